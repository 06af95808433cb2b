import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from consent.models import Guardian, School


class MagicLink(models.Model):
    """A one-time sign-in link. Only the token's SHA-256 is stored."""

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="magic_links")
    token_hash = models.CharField(max_length=64, unique=True)
    next_url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)


class ChildAccount(models.Model):
    """The account a child signs in with (docs/child-sign-in.md): a Django user named
    `child:<hex>`, with no password, never staff, never a guardian's (consent.accounts holds
    the wall). It only ever reaches this one child's own page."""

    student = models.OneToOneField(
        "consent.Student", on_delete=models.CASCADE, related_name="child_account"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="child_account"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class ChildLink(models.Model):
    """A one-time sign-in link staff issued for a child (printed on a sheet with its QR code,
    or returned by the staff API). Only the token's SHA-256 is stored; a new link for the same
    child ends the ones before it."""

    student = models.ForeignKey(
        "consent.Student", on_delete=models.CASCADE, related_name="child_links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)


class SignInAttempt(models.Model):
    """Every magic-link request, known address or not, and what became of it.

    The request records it and queues its id; the worker reads everything it needs from this
    row (the address itself is never stored here nor put on the broker: only which guardian it
    named, if any). The per-IP limit counts these rows; the per-address hold-back counts only
    the ones whose link was actually sent.
    """

    class Outcome(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Link sent")
        UNKNOWN = "unknown", _("No guardian has the address")
        HELD = "held", _("Held back: a live link was sent moments ago")
        REFUSED = "refused", _("Refused: a staff account")

    ip_hash = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(db_index=True)
    guardian = models.ForeignKey(
        Guardian, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    next_url = models.CharField(max_length=300, blank=True)
    # The requester's language (their browser's): the link is written in it unless the
    # guardian chose one.
    language = models.CharField(max_length=10, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.QUEUED)
    sent_at = models.DateTimeField(null=True, blank=True)
    link = models.ForeignKey(
        MagicLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )


class EmailChange(models.Model):
    """A guardian's own change of address: it applies only when the link mailed to the new
    address is used (24 hours, once); the old address is told, then forgotten here."""

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="email_changes")
    new_email = models.EmailField()
    old_email = models.EmailField(blank=True)  # until the notice to it is sent
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)


class ApiKey(models.Model):
    """A school-scoped key for capture stations, gate cameras and roster integrations."""

    SCOPES = ("roster", "enrol", "identify")

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    # Refreshed at most once a minute per key (a gate camera calls many times a second).
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Blank: never.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name or self.prefix} ({', '.join(self.scopes)})"


class Export(models.Model):
    """A download of everything held about a child (docs/exports.md), asked for by a parent
    (`guardian`) or by the child on their own page (`by_child`, no guardian): only the one who
    asked may download it. Built by a worker."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(
        "consent.Student", null=True, on_delete=models.SET_NULL, related_name="exports"
    )
    guardian = models.ForeignKey(
        Guardian, null=True, blank=True, on_delete=models.CASCADE, related_name="exports"
    )
    by_child = models.BooleanField(default=False)
    language = models.CharField(max_length=10, default="en")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    storage_name = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    requested_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["student", "guardian"],
                condition=models.Q(status__in=["pending", "running"]),
                name="one_export_in_progress_per_child_and_guardian",
            ),
            models.UniqueConstraint(
                fields=["student"],
                condition=models.Q(status__in=["pending", "running"], by_child=True),
                name="one_export_in_progress_per_child_by_the_child",
            ),
            # Exactly one requester: a guardian, or the child.
            models.CheckConstraint(
                condition=models.Q(guardian__isnull=True, by_child=True)
                | models.Q(guardian__isnull=False, by_child=False),
                name="export_asked_by_a_guardian_or_the_child",
            ),
        ]


class ConsentCampaign(models.Model):
    """Ask every guardian who has not decided about a purpose to decide (one email each)."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="campaigns")
    purpose = models.ForeignKey("consent.Purpose", on_delete=models.CASCADE, related_name="+")
    class_name = models.CharField(
        max_length=100, blank=True, help_text="Only this class (blank: the whole school)."
    )
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    emails_sent = models.PositiveIntegerField(default=0)
    # The school's notice, queued again for the guardians it had not reached.
    notices_resent = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        target = self.class_name or "whole school"
        return f"{self.purpose.name} — {target} ({self.created_at:%Y-%m-%d})"
