"""Signed deletion receipts (Ed25519) — what was erased where, and how it was verified.

Signed like consent receipts (`consent.signing`): each names the key id that signed it and
points to the published key history, never carrying the public key it is checked with.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from consent import signing
from consent.receipts import consent_receipt_verify

from .models import ErasureRequest, ErasureStep
from .systems import system_for

RECEIPT_VERSION = "guardian-erasure-receipt/2"
MANUAL_VERIFICATION = (
    "the system could no longer be asked (removed from the configuration, or disabled); the "
    "school's data protection officer confirmed that it holds nothing of the child"
)


def public_key_b64() -> str:
    """The current signing key's public half (base64); the whole history is `key_history`."""
    return signing.current_key().public_key


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
        "key_id": signing.current_key().key_id,
        "key_history_url": signing.key_history_url(),
        "signature_algorithm": signing.CANONICAL_FORM,
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
    return signing.sign(receipt)


def signed_receipt(request: ErasureRequest) -> dict[str, Any]:
    """The sealed request's receipt with its signature (empty until the request is sealed)."""
    return {**(request.receipt or {}), "signature": request.receipt_signature}


def erasure_receipt_verify(document: dict, public_key: str | None = None) -> signing.Verification:
    """Check a signed deletion receipt against the key history (or against `public_key`). A
    receipt of the first version carried its public key instead of a key id: that key must be
    in the history (trusting the key a document brings would prove nothing)."""
    key_id = document.get("key_id")
    if key_id is None and isinstance(document.get("public_key"), str):
        try:
            key_id = signing.key_id_for(base64.b64decode(document["public_key"], validate=True))
        except (ValueError, binascii.Error):
            key_id = None
    return signing.verify(
        document,
        key_id=key_id if isinstance(key_id, str) else "",
        signed_at=_completed(document),
        public_key=public_key,
    )


def receipt_verify(document: dict, public_key: str | None = None) -> bool:
    return erasure_receipt_verify(document, public_key).valid


def _completed(document: dict) -> datetime | None:
    try:
        completed = datetime.fromisoformat(str(document.get("completed_at")))
    except ValueError:
        return None
    return completed if completed.tzinfo else None


def receipt_check(document: dict) -> tuple[str, signing.Verification]:
    """Any receipt the portal writes, checked: its kind ("consent", "erasure", or "" when it is
    neither) and the verification."""
    if "consentReceiptID" in document:
        return "consent", consent_receipt_verify(document)
    if str(document.get("version", "")).startswith("guardian-erasure-receipt/"):
        return "erasure", erasure_receipt_verify(document)
    return "", signing.Verification(False, "unknown_kind")
