from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .people import Student
from .schools import Purpose, School


class ConsentStatus(models.Model):
    """What the consent rule said for one child and one purpose when it last ran.

    A materialised output of `consent.rules.purpose_statuses`, written only by
    `consent.status.consent_status_refresh` in the transaction that changed a rule input. Lists
    and filters read it; identification and enrolment always ask the live rule.

    Time alone changes two answers: consent expiry (`expires_at`: an active row whose
    `expires_at` has passed counts as expired) and inputs recorded for a later moment (a decision,
    notification or leaving date in the future: `recheck_at`, when the rule must run again).
    """

    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="consent_statuses")
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="+")
    active = models.BooleanField()
    reason = models.CharField(max_length=30)
    expires_at = models.DateTimeField(null=True, blank=True)
    recheck_at = models.DateTimeField(null=True, blank=True, db_index=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["student", "purpose"], name="uniq_consent_status")
        ]
        indexes = [models.Index(fields=["purpose", "active", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.student_id} {self.purpose_id}: {self.reason}"


class RosterImport(models.Model):
    """One roster upload, imported by a worker in chunks (docs/roster.md). The job's state is here,
    never only on the broker: `rows_done` moves with each committed chunk, so a killed worker
    or a lost message delays the import but never loses or repeats a row.

    The CSV is personal data: it is kept only until the import ends.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Finished")
        FAILED = "failed", _("Failed")

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="roster_imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(max_length=200, blank=True)
    csv_text = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    students_created = models.PositiveIntegerField(default=0)
    students_updated = models.PositiveIntegerField(default=0)
    guardians_created = models.PositiveIntegerField(default=0)
    links_created = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [[line, message], ...]
    claim = models.CharField(max_length=32, blank=True)  # the run that owns the job now
    attempts = models.PositiveSmallIntegerField(default=0)
    failure = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename or 'roster'} ({self.get_status_display()})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        return int(100 * self.rows_done / self.total_rows) if self.total_rows else 100
