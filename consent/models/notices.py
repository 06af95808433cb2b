from django.db import models
from django.utils.translation import gettext_lazy as _

from .people import Guardianship, Notification


class NoticeDelivery(models.Model):
    """One attempt to email the school's written notice to a linked guardian (a work row: the
    task that sends it takes its id, claims it, sends, and records the outcome here).

    Only a delivery the mail backend accepted writes the `Notification` the consent rule
    reads; a failed one keeps its error and is retried with backoff, then given up on
    ("not reached") until a campaign sends the notice again in a new delivery.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Accepted by the mail server")
        FAILED = "failed", _("Not reached")
        # An exception was recorded for the link (PoFA s.27(1): not found, welfare...): the
        # guardian is not contacted.
        EXCUSED = "excused", _("Not sent: an exception is recorded")

    OPEN = (Status.PENDING, Status.SENDING)

    guardianship = models.ForeignKey(
        Guardianship, on_delete=models.CASCADE, related_name="notice_deliveries"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the next try is due (a retry's backoff); the watchdog re-queues one overdue.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=10, blank=True)  # the language it was written in
    notification = models.OneToOneField(
        Notification,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "notice deliveries"
        constraints = [
            # One notice on its way per link: a second link, a campaign or a re-run joins it.
            models.UniqueConstraint(
                fields=["guardianship"],
                condition=models.Q(status__in=["pending", "sending"]),
                name="one_open_notice_delivery_per_link",
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"notice to {self.guardianship} ({self.get_status_display()})"
