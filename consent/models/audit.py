import hashlib
import json

from django.core.exceptions import ValidationError
from django.db import models


class AuditChainHead(models.Model):
    """One row: the newest event's hash. Locked while appending, so the chain never forks."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    last_event_id = models.BigIntegerField(null=True)


class AuditEvent(models.Model):
    """Append-only, hash-chained audit trail (docs/architecture.md, "The audit trail").

    Never holds images, embeddings or names: children appear only as their pseudonymous
    subject id. Actor labels name staff or "guardian" roles, not children.
    """

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=60, db_index=True)
    school_id = models.BigIntegerField(null=True, db_index=True)
    subject = models.CharField(max_length=36, blank=True, db_index=True)
    actor_kind = models.CharField(max_length=20)  # guardian / staff / api_key / system / public
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject", "action", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}"

    def canonical(self) -> bytes:
        body = {
            "at": self.at.isoformat(),
            "action": self.action,
            "school_id": self.school_id,
            "subject": self.subject,
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "data": self.data,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.prev_hash.encode() + self.canonical()).hexdigest()

    def save(self, *args, **kwargs) -> None:
        if self.pk:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are append-only.")
