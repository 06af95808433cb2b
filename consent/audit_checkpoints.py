"""Signed checkpoints of the audit trail, kept outside the database.

The hash chain shows that no event was changed in place, but anyone who can write the database
can recompute every hash after a change, or drop the newest events and move the head back. A
checkpoint pins the chain: the head event's id and hash, the number of events up to it and the
time, signed like the receipts (`consent.signing`: Ed25519 by the portal's current key,
GUARDIAN_SIGNING_KEY, which the database never holds). It names its key's id and is checked
against the published key history, so a key rotation leaves older checkpoints valid. It is
written daily by beat and on demand (`manage.py verify_audit --checkpoint`) as a file in
AUDIT_CHECKPOINT_DIR, emailed to the schools' DPOs and shown on the transparency pages.
`verify_audit` then checks the chain against the latest one: a rewritten or truncated trail no
longer matches it (consent.audit.audit_verify).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from . import signing
from .models import AuditChainHead, AuditEvent, School

CHECKPOINT_VERSION = "guardian-audit-checkpoint/1"
PREFIX = "audit-checkpoint-"


def audit_checkpoint_build(*, now: datetime | None = None) -> dict[str, Any] | None:
    """The chain's head now, signed; None while the trail is empty. The head is locked while
    the events are counted, so no append falls between the two."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.last_event_id is None:
            return None
        count = AuditEvent.objects.filter(pk__lte=head.last_event_id).count()
        body = {
            "version": CHECKPOINT_VERSION,
            "head_event_id": head.last_event_id,
            "head_hash": head.last_hash,
            "count": count,
            "at": (now or timezone.now()).isoformat(),
            "key_id": signing.current_key().key_id,
        }
    body["signature"] = signing.sign(body)
    return body


def _key_id(checkpoint: dict) -> str:
    """The key a checkpoint names. Checkpoints written before key ids carried the public key
    itself; its id is derived from it (and must then be in the key history all the same)."""
    if isinstance(checkpoint.get("key_id"), str):
        return checkpoint["key_id"]
    try:
        return signing.key_id_for(base64.b64decode(checkpoint.get("public_key", ""), validate=True))
    except (TypeError, ValueError, binascii.Error):
        return ""


def checkpoint_signature_valid(checkpoint: dict, public_key: str | None = None) -> bool:
    """Whether the checkpoint was signed by a key of the portal's history (or by the one
    given), in the period that key signed in."""
    try:
        at = datetime.fromisoformat(str(checkpoint.get("at")))
    except ValueError:
        return False
    if at.tzinfo is None:
        return False
    return signing.verify(
        checkpoint, key_id=_key_id(checkpoint), signed_at=at, public_key=public_key
    ).valid


def _directory(directory: Path | str | None) -> Path:
    return Path(directory or settings.AUDIT_CHECKPOINT_DIR)


def audit_checkpoint_write(
    *, directory: Path | str | None = None, email: bool = True
) -> tuple[dict, Path] | None:
    """Write a new checkpoint file (atomically, readable by its owner only) and email it to
    every school's DPO. Returns it and its path; None while the trail is empty."""
    checkpoint = audit_checkpoint_build()
    if checkpoint is None:
        return None
    folder = _directory(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(checkpoint["at"]).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{PREFIX}{stamp}-{checkpoint['head_event_id']}.json"
    text = json.dumps(checkpoint, indent=2, sort_keys=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(temporary, path)  # mkstemp made it 0600
    if email:
        _email(checkpoint, text)
    return checkpoint, path


def _email(checkpoint: dict, text: str) -> None:
    recipients = sorted(
        set(School.objects.exclude(dpo_email="").values_list("dpo_email", flat=True))
    )
    if not recipients:
        return
    send_mail(
        f"Guardian: audit trail checkpoint ({checkpoint['count']} events)",
        (
            "Keep this message: it pins the audit trail as it was at "
            f"{checkpoint['at']}. `manage.py verify_audit --against <file>` with this text "
            "saved as a file checks the trail against it; a trail rewritten or cut short "
            f"since will not match.\n\n{text}\n"
        ),
        None,
        recipients,
    )


def audit_checkpoint_read(path: Path | str) -> dict | None:
    """A checkpoint file's content if it is one and its signature holds, else None."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("version") != CHECKPOINT_VERSION:
        return None
    return document if checkpoint_signature_valid(document) else None


def audit_checkpoint_files(directory: Path | str | None = None) -> list[Path]:
    folder = _directory(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{PREFIX}*.json"))


def audit_checkpoint_latest(
    directory: Path | str | None = None,
) -> tuple[dict | None, list[Path]]:
    """The newest checkpoint whose signature holds, and the files that are not valid
    checkpoints (a file someone edited is reported, never trusted)."""
    valid, invalid = [], []
    for path in audit_checkpoint_files(directory):
        document = audit_checkpoint_read(path)
        if document is None:
            invalid.append(path)
        else:
            valid.append(document)
    latest = max(valid, key=lambda d: (d["head_event_id"], d["at"]), default=None)
    return latest, invalid
