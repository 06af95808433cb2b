"""The hash-chained audit trail: append inside the caller's transaction, verify on demand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .actors import Actor
from .models import AuditChainHead, AuditEvent

# Actions shown to a parent under "who accessed this".
ACCESS_ACTIONS = (
    "biometrics.photo_viewed",
    "biometrics.template_viewed",
    "biometrics.held_data_viewed",
    "export.requested",
    "export.downloaded",
    "admin.child_viewed",
)

FORBIDDEN_KEYS = {"embedding", "image", "photo_bytes", "name", "student_name", "email"}


def audit_record(
    action: str,
    *,
    actor: Actor,
    school_id: int | None = None,
    subject: str = "",
    data: dict | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain. Joins the caller's transaction (write it inside the action).

    1. Normalise `data` through JSON so the hash computed now equals the one recomputed later.
    2. Lock the chain head, link the new event to it, move the head.
    """
    payload = json.loads(json.dumps(data or {}, default=str))
    leaked = FORBIDDEN_KEYS.intersection(payload)
    if leaked:
        raise ValueError(f"Audit events never carry {sorted(leaked)}")
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            at=at or timezone.now(),
            action=action,
            school_id=school_id,
            subject=str(subject or ""),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor.label[:200],
            data=payload,
            prev_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save()
        head.last_hash = event.hash
        head.last_event_id = event.pk
        head.save(update_fields=["last_hash", "last_event_id"])
    return event


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""


def audit_verify(batch_size: int = 5000) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or content does not hold."""
    prev = "0" * 64
    checked = 0
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(pk__gt=last_id).order_by("pk")[:batch_size])
        if not batch:
            break
        for event in batch:
            if event.prev_hash != prev:
                return ChainReport(False, checked, event.pk, "link to previous event broken")
            if event.compute_hash() != event.hash:
                return ChainReport(False, checked, event.pk, "content does not match its hash")
            prev = event.hash
            checked += 1
        last_id = batch[-1].pk
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and checked and head.last_hash != prev:
        return ChainReport(False, checked, None, "newest events missing (chain truncated)")
    return ChainReport(True, checked)
