"""The hash-chained audit trail: append inside the caller's transaction, verify on demand."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .actors import Actor
from .models import AuditChainHead, AuditEvent

# Actions shown to a parent under "who accessed this", with the words the parent reads.
ACCESS_WORDS = {
    "biometrics.photo_viewed": _("looked at a photo"),
    "biometrics.template_viewed": _("looked at a face template"),
    "biometrics.held_data_viewed": _("looked at what is held"),
    "export.requested": _("asked for a download"),
    "export.downloaded": _("downloaded everything"),
    "admin.child_viewed": _("opened the child's record"),
}
ACCESS_ACTIONS = tuple(ACCESS_WORDS)

FORBIDDEN_KEYS = {"embedding", "image", "photo_bytes", "name", "student_name", "email"}
# People are recorded by kind and pseudonymous id only: the trail is never erased, so it must
# hold no name. Systems and API keys keep their label (a job's or a key's name, not a person's).
LABELLED_KINDS = {"system", "api_key"}


def actor_label(actor: Actor) -> str:
    """What the trail says about who acted beyond kind and id: a person gets nothing (their
    id is the pseudonym); a system or an API key its label."""
    return actor.label[:200] if actor.kind in LABELLED_KINDS else ""


@dataclass
class AuditEntry:
    """One event to append (see audit_record)."""

    action: str
    actor: Actor
    school_id: int | None = None
    subject: str | uuid.UUID = ""
    data: dict | None = None
    at: datetime | None = None


def audit_record(
    action: str,
    *,
    actor: Actor,
    school_id: int | None = None,
    subject: str | uuid.UUID = "",
    data: dict | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain. Joins the caller's transaction (write it inside the
    action)."""
    return audit_record_many([AuditEntry(action, actor, school_id, subject, data, at)])[0]


_batch = threading.local()  # .events: the events gathered by the open audit_batch, or None


@contextmanager
def audit_batch() -> Iterator[None]:
    """Gather the events recorded inside and append them to the chain together when the block
    ends (inside it, so they commit with what they record): one append per service call
    instead of one per event. Call it inside the service's transaction. The chain head is
    locked when the batch begins, as a first append would lock it, so locks are taken in the
    order every other writer takes them (the head, then the rows it writes). Nested batches join
    the outer one. Code that catches an error raised after it recorded events, and carries on,
    wraps that part in `audit_undo_on_error`."""
    if getattr(_batch, "events", None) is not None:
        yield
        return
    head = _head_locked()
    _batch.events = []
    try:
        yield
        events, _batch.events = _batch.events, None
        _append(events, head)
    finally:
        _batch.events = None


@contextmanager
def audit_undo_on_error() -> Iterator[None]:
    """Forget the events gathered inside when it raises (a savepoint rolled back); outside a
    batch, the transaction's rollback takes them with it anyway."""
    events = getattr(_batch, "events", None)
    mark = len(events) if events is not None else 0
    try:
        yield
    except BaseException:
        if events is not None:
            del events[mark:]
        raise


def audit_record_many(entries: list[AuditEntry]) -> list[AuditEvent]:
    """Append events to the chain in order, holding the chain head once for all of them (or,
    inside `audit_batch`, when the batch ends).

    1. Normalise each `data` through JSON so the hash computed now equals the one recomputed
       later; refuse keys that could carry biometric or identifying data.
    2. Lock the chain head, link each new event to the one before, move the head.
    """
    now = timezone.now()
    events = []
    for entry in entries:
        payload = json.loads(json.dumps(entry.data or {}, default=str))
        leaked = FORBIDDEN_KEYS.intersection(payload)
        if leaked:
            raise ValueError(f"Audit events never carry {sorted(leaked)}")
        events.append(
            AuditEvent(
                at=entry.at or now,
                action=entry.action,
                school_id=entry.school_id,
                subject=str(entry.subject or ""),
                actor_kind=entry.actor.kind,
                actor_id=entry.actor.id,
                actor_label=actor_label(entry.actor),
                data=payload,
            )
        )
    gathering = getattr(_batch, "events", None)
    if gathering is not None:
        gathering.extend(events)
    else:
        _append(events)
    return events


def _head_locked() -> AuditChainHead:
    head, _created = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    return head


def _append(events: list[AuditEvent], head: AuditChainHead | None = None) -> None:
    """Lock the chain head (unless the caller holds it), link each event to the one before,
    insert them, move the head."""
    if not events:
        return
    with transaction.atomic(savepoint=False):  # joins the caller's; no savepoint to pay for
        head = head or _head_locked()
        prev = head.last_hash
        for event in events:
            event.prev_hash = prev
            event.hash = prev = event.compute_hash()
        if len(events) == 1:
            events[0].save()
        else:
            AuditEvent.objects.bulk_create(events)
        head.last_hash = prev
        head.last_event_id = events[-1].pk
        head.save(update_fields=["last_hash", "last_event_id"])


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""
    anchored: bool = False  # the chain matched the checkpoint it was checked against


def audit_verify(batch_size: int = 5000, checkpoint: dict | None = None) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or content does not hold.

    With a checkpoint (consent.audit_checkpoints: a signed head hash, count and time kept
    outside the database), the chain must also reach the checkpoint's head event, with the same
    hash and as many events up to it: a trail rewritten (hashes recomputed, head moved) or
    truncated by someone who can write the database no longer matches it.
    """
    prev = "0" * 64
    checked = 0
    last_id = 0
    anchored = False
    head_id = checkpoint["head_event_id"] if checkpoint else None
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
            if checkpoint and head_id is not None and event.pk >= head_id and not anchored:
                if event.pk != head_id or event.hash != checkpoint["head_hash"]:
                    return ChainReport(
                        False,
                        checked,
                        event.pk,
                        f"differs from the signed checkpoint of {checkpoint['at']} "
                        "(the trail was rewritten)",
                    )
                if checked != checkpoint["count"]:
                    return ChainReport(
                        False,
                        checked,
                        event.pk,
                        f"{checkpoint['count']} events up to here at the checkpoint of "
                        f"{checkpoint['at']}, {checked} now (events removed and relinked)",
                    )
                anchored = True
        last_id = batch[-1].pk
    if checkpoint and head_id is not None and not anchored:
        return ChainReport(
            False,
            checked,
            None,
            f"events covered by the signed checkpoint of {checkpoint['at']} are missing "
            "(the trail was truncated)",
        )
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and checked and head.last_hash != prev:
        return ChainReport(False, checked, None, "newest events missing (chain truncated)")
    return ChainReport(True, checked, anchored=anchored)
