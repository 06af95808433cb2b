"""Ed25519 signatures on receipts, and the key history that checks them after a rotation.

Consent receipts (`consent.receipts`) and deletion receipts (`biometrics.receipts`) are signed
the same way: Ed25519, by the portal's current key (`GUARDIAN_SIGNING_KEY`), over the
canonical JSON of the receipt without its `signature` field — keys sorted, no spaces, UTF-8
(not ASCII-escaped); receipts hold no floating-point numbers. Each receipt names the key id
that signed it. A receipt never carries the public key it is checked with: the key comes from
the published history (`/api/v1/keys/`, and the school's transparency page), which lists every
key the portal has signed with — the current one and each retired one
(`GUARDIAN_SIGNING_KEYS_RETIRED`) — with the period it signed in. A key id is derived from the
key itself (`ed25519-` and the first 16 hex digits of the SHA-256 of its 32 raw bytes), so
anyone can check that the history's key and id belong together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

ALGORITHM = "Ed25519"
CANONICAL_FORM = (
    "Ed25519 over the canonical JSON (sorted keys, no spaces, UTF-8) of this object without "
    "`signature`"
)
# The DER prefix that turns 32 raw Ed25519 public-key bytes into a SubjectPublicKeyInfo, as
# OpenSSL reads it (RFC 8410).
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


@dataclass(frozen=True)
class SigningKey:
    """One key of the history: its id, its public half and when it signed."""

    key_id: str
    public_key: str  # base64 of the 32 raw bytes
    valid_from: datetime | None
    valid_until: datetime | None  # None: it signs today

    @property
    def current(self) -> bool:
        return self.valid_until is None

    def signed_in_period(self, at: datetime, within: timedelta = timedelta(0)) -> bool:
        """Whether a receipt dated `at` (known to `within`: a time in [at, at + within] may be
        the real one, as for a timestamp in whole seconds) was signed while this key signed."""
        started = self.valid_from is None or (
            self.valid_from < at + within if within else self.valid_from <= at
        )
        return started and (self.valid_until is None or at < self.valid_until)

    def as_json(self) -> dict:
        return {
            "key_id": self.key_id,
            "algorithm": ALGORITHM,
            "public_key": self.public_key,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "status": "current" if self.current else "retired",
        }


@dataclass(frozen=True)
class Verification:
    valid: bool
    problem: str  # "" when valid; otherwise one of PROBLEMS
    key: SigningKey | None = None


PROBLEMS = {
    "unknown_kind": "This is not a receipt the portal writes.",
    "not_signed": "The receipt has no signature.",
    "unknown_key": "The receipt names a key that is not in the portal's key history.",
    "outside_key_period": "The receipt is dated outside the period its key signed in.",
    "bad_signature": "The signature does not match the receipt: it was changed, or forged.",
}


def key_id_for(raw_public_key: bytes) -> str:
    return "ed25519-" + hashlib.sha256(raw_public_key).hexdigest()[:16]


def canonical(document: dict) -> bytes:
    """The bytes a signature covers: the document without `signature`, canonical JSON."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@lru_cache(maxsize=4)
def _private_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _when(value: object, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: not an ISO 8601 date-time: {value!r}") from exc
    if when.tzinfo is None:
        raise ImproperlyConfigured(f"{name}: give a time zone: {value!r}")
    return when


def _retired() -> list[SigningKey]:
    keys = []
    for i, entry in enumerate(settings.GUARDIAN_SIGNING_KEYS_RETIRED):
        name = f"GUARDIAN_SIGNING_KEYS_RETIRED[{i}]"
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ImproperlyConfigured(f"{name}: needs public_key, 32 bytes in base64") from exc
        until = _when(entry.get("valid_until"), name)
        if until is None:
            raise ImproperlyConfigured(f"{name}: a retired key needs valid_until")
        keys.append(
            SigningKey(
                key_id_for(raw),
                base64.b64encode(raw).decode(),
                _when(entry.get("valid_from"), name),
                until,
            )
        )
    return sorted(keys, key=lambda k: cast(datetime, k.valid_until), reverse=True)


def current_key() -> SigningKey:
    raw = _raw_public(_private_key(settings.GUARDIAN_SIGNING_KEY))
    retired = _retired()
    since = _when(settings.GUARDIAN_SIGNING_KEY_VALID_FROM, "GUARDIAN_SIGNING_KEY_VALID_FROM")
    if since is None and retired:
        since = retired[0].valid_until
    return SigningKey(key_id_for(raw), base64.b64encode(raw).decode(), since, None)


def key_history() -> list[SigningKey]:
    """Every key the portal signed with: the current one first, then the retired, newest
    first. A retired key that is also the current one (a rotation half done) is listed once."""
    current = current_key()
    return [current, *(k for k in _retired() if k.key_id != current.key_id)]


def key_find(key_id: str) -> SigningKey | None:
    return next((k for k in key_history() if k.key_id == key_id), None)


def _given_key(public_key: str) -> SigningKey | None:
    try:
        raw = base64.b64decode(public_key, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        return None
    return SigningKey(key_id_for(raw), public_key, None, None)


def key_history_url() -> str:
    return settings.SITE_URL.rstrip("/") + reverse("api-keys")


def sign(document: dict) -> str:
    """The current key's signature of `document` (base64); the document must already name the
    current key's id (see `current_key`), so the id is covered by the signature too."""
    key = _private_key(settings.GUARDIAN_SIGNING_KEY)
    return base64.b64encode(key.sign(canonical(document))).decode()


def verify(
    document: dict,
    *,
    key_id: str,
    signed_at: datetime | None = None,
    signed_within: timedelta = timedelta(0),
    public_key: str | None = None,
) -> Verification:
    """Check a signed receipt: its key is in the history (or is `public_key`, a key obtained
    some other way, whose id must be the one named), it is dated in that key's period (when
    `signed_at` is given), and the signature covers exactly this document."""
    signature = document.get("signature")
    if not isinstance(signature, str) or not signature:
        return Verification(False, "not_signed")
    key = key_find(key_id) if isinstance(key_id, str) else None
    if public_key is not None:
        given = _given_key(public_key)
        key = given if given and given.key_id == key_id else None
    if key is None:
        return Verification(False, "unknown_key")
    if signed_at is not None and not key.signed_in_period(signed_at, signed_within):
        return Verification(False, "outside_key_period", key)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
    try:
        public.verify(base64.b64decode(signature, validate=True), canonical(document))
    except (InvalidSignature, ValueError, binascii.Error):
        return Verification(False, "bad_signature", key)
    return Verification(True, "", key)
