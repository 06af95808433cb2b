"""Signed deletion receipts (Ed25519) — what was erased where, and how it was verified."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from .models import ErasureRequest, ErasureStep
from .systems import system_for

RECEIPT_VERSION = "guardian-erasure-receipt/1"
MANUAL_VERIFICATION = (
    "the system could no longer be asked (removed from the configuration, or disabled); the "
    "school's data protection officer confirmed that it holds nothing of the child"
)


@cache
def _private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings.GUARDIAN_SIGNING_KEY)


def public_key_b64() -> str:
    raw = _private_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def canonical(receipt: dict) -> bytes:
    return json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def erasure_receipt_build(
    request: ErasureRequest, steps: list[ErasureStep] | None = None
) -> dict[str, Any]:
    """The receipt of a request being sealed (its completion time is set)."""
    if request.completed_at is None:
        raise ValueError("only a completed erasure has a receipt")
    steps = list(request.steps.order_by("id")) if steps is None else steps
    return {
        "version": RECEIPT_VERSION,
        "receipt_id": str(request.pk),
        "subject": str(request.subject_id),
        "school": request.school.name,
        "trigger": request.trigger,
        "requested_at": request.requested_at.isoformat(),
        "completed_at": request.completed_at.isoformat(),
        "systems": [_system(s) for s in steps],
        "proof_at_erasure": _proof(steps),
        "kept": "This receipt and a minimal record of the erasure (pseudonym, times, systems, "
        "counts). No photo, template or recognition event of the child is kept.",
        "public_key": public_key_b64(),
        "signature_algorithm": "Ed25519 over the canonical JSON (sorted keys, no spaces) of "
        "this object without `signature`",
    }


def _system(step: ErasureStep) -> dict[str, Any]:
    system = system_for(step.kind)
    entry: dict[str, Any] = {
        "system": step.system,
        "kind": step.kind,
        "erased": list(system.erased),
        "items_erased": step.items_erased,
        "attempts": step.attempts,
        "verified_at": step.verified_at.isoformat() if step.verified_at else None,
        "verification": system.verification,
    }
    if step.confirmed_at:
        entry["verification"] = MANUAL_VERIFICATION
        entry["confirmed_manually"] = {
            "by": step.confirmed_by,
            "at": step.confirmed_at.isoformat(),
            "evidence": step.confirmation_evidence,
        }
    if step.proof:
        entry["proof"] = step.proof
    return entry


def _proof(steps: list[ErasureStep]) -> dict[str, Any]:
    """What was checked at erasure time, before the key was destroyed, with the figures."""
    probe = next((s.proof.get("match_index_probe") for s in steps if s.kind == "database"), None)
    holders = []
    for step in (s for s in steps if s.kind == "http"):
        if step.confirmed_at:
            holders.append({"system": step.system, "confirmed_manually": True})
        else:
            answer = step.proof.get("holder", {})
            holders.append(
                {
                    "system": step.system,
                    "answered": answer.get("answered"),
                    "asked_at": answer.get("asked_at"),
                }
            )
    return {
        "match_index": probe,
        "match_index_check": "the child's former face templates, decrypted before their rows "
        "were deleted and kept only in memory, were compared with the school's match index "
        "rebuilt without them; matches_to_the_child must be 0",
        "holders": holders,
        "holder_check": "each holder answered GET /subjects/{subject} with 404 after erasing",
        "key_destroyed_after": "every other system was verified",
    }


def erasure_receipt_sign(receipt: dict) -> str:
    return base64.b64encode(_private_key().sign(canonical(receipt))).decode()


def signed_receipt(request: ErasureRequest) -> dict[str, Any]:
    """The sealed request's receipt with its signature (empty until the request is sealed)."""
    return {**(request.receipt or {}), "signature": request.receipt_signature}


def receipt_verify(document: dict, public_key: str | None = None) -> bool:
    """Check a signed receipt against the portal's public key (or the one given)."""
    body = {k: v for k, v in document.items() if k != "signature"}
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key or public_key_b64()))
    try:
        key.verify(base64.b64decode(document.get("signature", "")), canonical(body))
    except (InvalidSignature, ValueError):
        return False
    return True
