"""Signed checkpoints of the audit trail, kept outside the database.

The hash chain shows that no event was changed in place, but anyone who can write the database
can recompute every hash after a change, or drop the newest events and move the head back. A
checkpoint pins the chain: the head event's id and hash, the number of events up to it and the
time, signed with the portal's Ed25519 key (GUARDIAN_SIGNING_KEY, which the database never
holds). It is written daily by beat and on demand (`manage.py verify_audit --checkpoint`) as a
file in AUDIT_CHECKPOINT_DIR, emailed to the schools' DPOs and shown on the transparency pages.
`verify_audit` then checks the chain against the latest one: a rewritten or truncated trail no
longer matches it (consent.audit.audit_verify).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEvent, School

CHECKPOINT_VERSION = "guardian-audit-checkpoint/1"
PREFIX = "audit-checkpoint-"


def _key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings.GUARDIAN_SIGNING_KEY)


def _public_key_b64() -> str:
    raw = _key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
            "public_key": _public_key_b64(),
        }
    body["signature"] = base64.b64encode(_key().sign(_canonical(body))).decode()
    return body


def checkpoint_signature_valid(checkpoint: dict, public_key: str | None = None) -> bool:
    """Whether the checkpoint was signed by the portal's key (or the one given)."""
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key or _public_key_b64()))
        key.verify(base64.b64decode(checkpoint.get("signature", "")), _canonical(body))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


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
