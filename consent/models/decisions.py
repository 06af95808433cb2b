import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .people import Guardian, Student
from .schools import Purpose


class Decision(models.TextChoices):
    GRANT = "grant", _("Granted")
    WITHDRAW = "withdraw", _("Withdrawn")
    OBJECT = "object", _("Objected")
    CHILD_REFUSAL = "child_refusal", _("Refused by the child")
    CHILD_REFUSAL_LIFTED = "child_refusal_lifted", _("Child's refusal lifted by the child")


class Method(models.TextChoices):
    WEB = "web", _("Web")
    API = "api", _("API")
    PAPER = "paper", _("Paper, scanned by staff")
    STAFF = "staff", _("Recorded by staff")


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValidationError("Consent decisions are append-only.")

    def delete(self):
        raise ValidationError("Consent decisions are append-only.")


class ConsentDecision(models.Model):
    """One guardian's (or the child's) decision about one purpose. Never edited, never deleted.

    Decisions survive an erasure: they are the proof of consent and hold no biometric data.
    """

    student = models.ForeignKey(Student, on_delete=models.PROTECT, related_name="decisions")
    # Null only for a child's refusal, which covers every purpose.
    purpose = models.ForeignKey(
        Purpose, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    guardian = models.ForeignKey(
        Guardian, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    decision = models.CharField(max_length=30, choices=Decision.choices)
    notice_version = models.PositiveIntegerField(null=True, blank=True)
    notice_sha256 = models.CharField(max_length=64, blank=True)
    # The language of the notice text the decision was made on (its SHA-256 is notice_sha256).
    notice_language = models.CharField(max_length=10, blank=True)
    method = models.CharField(max_length=10, choices=Method.choices)
    at = models.DateTimeField(db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    user_agent_hash = models.CharField(max_length=64, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.TextField(blank=True)
    receipt_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    receipt = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["student", "purpose", "at"])]

    def __str__(self) -> str:
        code = self.purpose.code if self.purpose is not None else "all purposes"
        return f"{self.get_decision_display()} {code} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk:
            raise ValidationError("Consent decisions are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Consent decisions are append-only.")
