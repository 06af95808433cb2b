"""The Guardian holder protocol, version 2: the contract both sides share (standard library only).

A *holder* is an external system that keeps a copy of a child's face templates (a gate
controller, a canteen till, a vendor server).  Guardian pushes templates to holders and erases
them again when consent is withdrawn.  This module is imported by the portal's client
(:mod:`biometrics.holders.client`) and by the reference holder (``biometrics.reference_holder``),
so it deliberately uses the standard library only -- it must never import Django.

Every signed request carries four headers (docs/holder-protocol.md)::

    X-Guardian-Key:       key id (names the signing secret, and so the tenant)
    X-Guardian-Timestamp: <unix seconds, integer>
    X-Guardian-Nonce:     <32 hex digits, fresh for every request>
    X-Guardian-Signature: hex(HMAC-SHA256(secret, message))

    message = ts "\\n" nonce "\\n" METHOD "\\n" path "\\n" || body

``path`` is the request target exactly as sent on the wire, including the query string.  A
receiver refuses a timestamp older than :data:`MAX_AGE_SECONDS` or newer than
:data:`MAX_FUTURE_SECONDS`, and a nonce it has seen within that window (:class:`NonceCache`),
so a captured request can never be played a second time.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import math
import re
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TypeGuard

__all__ = [
    "BAD_SIGNATURE",
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_RULE",
    "KEY_HEADER",
    "MAX_AGE_SECONDS",
    "MAX_BATCH_SUBJECTS",
    "MAX_FUTURE_SECONDS",
    "MAX_MODEL_LENGTH",
    "MODEL_RULE",
    "NONCE_HEADER",
    "REPLAYED_REQUEST",
    "SIGNATURE_HEADER",
    "STALE_REQUEST",
    "SUBJECT_ERASED",
    "TIMESTAMP_HEADER",
    "TOMBSTONE_MARGIN_SECONDS",
    "HolderError",
    "HolderRejected",
    "HolderUnavailable",
    "NonceCache",
    "check_signature",
    "key_id",
    "new_nonce",
    "parse_subject",
    "parse_time",
    "secret_bytes",
    "sign",
    "signed_headers",
    "valid_model",
    "validate_embedding",
]

KEY_HEADER = "X-Guardian-Key"
SIGNATURE_HEADER = "X-Guardian-Signature"
TIMESTAMP_HEADER = "X-Guardian-Timestamp"
NONCE_HEADER = "X-Guardian-Nonce"
#: A request signed longer ago than this is refused (and its nonce need not be remembered).
MAX_AGE_SECONDS = 300
#: A request signed this far ahead of the receiver's clock is still accepted; further is not.
MAX_FUTURE_SECONDS = 30
#: The most subjects one batch erasure (``POST /erasures``) may name.
MAX_BATCH_SUBJECTS = 1000
#: A template created less than this after a subject's erasure is refused (timestamps of the
#: erasure are whole seconds, so a template from the same second counts as older).
TOMBSTONE_MARGIN_SECONDS = 1

#: Length of a face template (dlib / face_recognition embeddings are 128-d).
EMBEDDING_DIMENSIONS = 128
#: Longest accepted ``model`` label.
MAX_MODEL_LENGTH = 100

# The same words whether the client refuses a template locally or the holder answers 400.
EMBEDDING_RULE = f"embedding must be {EMBEDDING_DIMENSIONS} finite numbers"
MODEL_RULE = f"model must be a non-empty string of at most {MAX_MODEL_LENGTH}"

# Reasons returned by check_signature() and NonceCache; also the ``error`` codes of 401 replies.
BAD_SIGNATURE = "bad_signature"
STALE_REQUEST = "stale_request"
REPLAYED_REQUEST = "replayed_request"
#: The ``error`` of a 410 reply: the subject was erased after this copy was made.
SUBJECT_ERASED = "subject_erased"

# Canonical 8-4-4-4-12 form or 32 bare hex digits.  Nothing else (no braces, no "urn:uuid:",
# no surrounding whitespace) so that a wildcard or an empty value can never be mistaken for an id.
_UUID_RE = re.compile(
    r"\A(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})\Z"
)
_TIMESTAMP_RE = re.compile(r"\A[0-9]{1,12}\Z")
_SIGNATURE_RE = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_NONCE_RE = re.compile(r"\A[0-9a-f]{32}\Z")
_KEY_ID_LABEL = b"guardian-holder-key-id"


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key for ``secret``; an empty or non-text secret is refused (never signs)."""
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        key = secret.encode("utf-8")
    else:
        raise TypeError("secret must be str or bytes")
    if not key:
        raise ValueError("the holder secret must not be empty")
    return key


def key_id(secret: str | bytes) -> str:
    """The public name of a signing secret (16 hex digits): the holder finds the secret, and
    with it the tenant, from this. It reveals nothing about the secret."""
    return hmac.new(secret_bytes(secret), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def new_nonce() -> str:
    """A fresh nonce: 128 random bits as 32 lower-case hex digits."""
    return secrets.token_hex(16)


def sign(secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 signature of one request.

    The signed message is ``timestamp "\\n" nonce "\\n" METHOD "\\n" path "\\n"`` (UTF-8) followed
    by the raw body bytes.  ``method`` is upper-cased; ``path`` must include the query string.
    """
    if body is None:
        body = b""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be bytes")
    head = f"{timestamp}\n{nonce}\n{method.upper()}\n{path}\n".encode()
    mac = hmac.new(secret_bytes(secret), head, hashlib.sha256)
    mac.update(bytes(body))
    return mac.hexdigest()


def check_signature(
    secret: str,
    timestamp: str | None,
    nonce: str | None,
    method: str,
    path: str,
    body: bytes,
    signature: str | None,
    now: float | None = None,
) -> str | None:
    """Verify a request; return ``None`` if it is good, else the reason.

    :data:`STALE_REQUEST` for a well-formed timestamp older than :data:`MAX_AGE_SECONDS` or
    newer than :data:`MAX_FUTURE_SECONDS` (against ``now``, default the current time);
    :data:`BAD_SIGNATURE` for anything else (missing or malformed headers, a wrong signature, an
    empty secret).  Constant-time.  Whether the nonce is new is the caller's
    :class:`NonceCache`'s to say, after this check passed.
    """
    if not isinstance(timestamp, str) or not _TIMESTAMP_RE.match(timestamp):
        return BAD_SIGNATURE
    if not isinstance(nonce, str) or not _NONCE_RE.match(nonce):
        return BAD_SIGNATURE
    if not isinstance(signature, str) or not _SIGNATURE_RE.match(signature):
        return BAD_SIGNATURE
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age > MAX_AGE_SECONDS or -age > MAX_FUTURE_SECONDS:
        return STALE_REQUEST
    try:
        expected = sign(secret, timestamp, nonce, method, path, body)
    except (TypeError, ValueError):
        return BAD_SIGNATURE
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("ascii")):
        return BAD_SIGNATURE
    return None


def signed_headers(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four authentication headers for a request (timestamp ``int(now or time.time())``,
    a fresh nonce unless one is given)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = new_nonce() if nonce is None else nonce
    return {
        KEY_HEADER: key_id(secret),
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(secret, timestamp, nonce, method, path, body),
    }


class NonceCache:
    """The nonces a receiver has accepted, remembered for as long as their timestamps could
    still pass the window; thread-safe.

    A receiver that restarts forgets them, so it refuses every request signed before it
    started (``not_before``): a request captured earlier can then not be replayed either.
    """

    def __init__(self, not_before: float | None = None) -> None:
        self.not_before = int(time.time() if not_before is None else not_before)
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, key: str, nonce: str, timestamp: str, now: float | None = None) -> str | None:
        """Remember an authenticated request's nonce; ``None`` if it is new, else the reason
        (:data:`REPLAYED_REQUEST`, or :data:`STALE_REQUEST` when signed before ``not_before``)."""
        signed_at = int(timestamp)
        if signed_at < self.not_before:
            return STALE_REQUEST
        current = time.time() if now is None else now
        entry = (key, nonce.lower())
        with self._lock:
            while self._expiry and self._expiry[0][0] < current:
                _, old_key, old_nonce = heapq.heappop(self._expiry)
                self._seen.discard((old_key, old_nonce))
            if entry in self._seen:
                return REPLAYED_REQUEST
            self._seen.add(entry)
            # Kept until its timestamp is past the window, whatever the clocks did meanwhile.
            forget_at = max(current, signed_at) + MAX_AGE_SECONDS + MAX_FUTURE_SECONDS
            heapq.heappush(self._expiry, (forget_at, *entry))
        return None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def parse_subject(value: object) -> str | None:
    """Return the canonical lower-case UUID string for ``value``, or ``None`` if it is not one.

    Only the hyphenated 8-4-4-4-12 form and 32 bare hex digits are accepted, case-insensitively.
    Empty strings, whitespace, wildcards (``"*"``, ``"all"``), braces, ``urn:uuid:`` prefixes and
    non-string values all give ``None``.  Template ids follow the same rules.
    """
    if not isinstance(value, str) or not _UUID_RE.match(value):
        return None
    return str(uuid.UUID(value))


def parse_time(value: object) -> float | None:
    """An ISO-8601 time (a time without zone is UTC) as unix seconds, or ``None``."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def validate_embedding(value: Any) -> list[float] | None:
    """Return ``value`` as a list of 128 finite floats, or ``None`` if it is not one."""
    if not isinstance(value, list | tuple) or len(value) != EMBEDDING_DIMENSIONS:
        return None
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            return None
        try:
            number = float(item)
        except (OverflowError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        out.append(number)
    return out


def valid_model(value: object) -> TypeGuard[str]:
    """True if ``value`` is an acceptable ``model`` label (see :data:`MODEL_RULE`)."""
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_MODEL_LENGTH


# --------------------------------------------------------------------------------------------
# Errors (raised by the client; their ``status`` and ``error`` are what the holder answered)
# --------------------------------------------------------------------------------------------


class HolderError(Exception):
    """Base class for holder failures.

    ``status`` is the HTTP status (``None`` when no response was received); ``body`` is the
    decoded JSON reply when there was one (else the raw text, or ``None``).
    """

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def error(self) -> str | None:
        """The holder's ``error`` code (e.g. ``"bad_subject"``), if it sent one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), str):
            return self.body["error"]
        return None

    def describe(self) -> str:
        """The failure in a few words that name no subject: the class, status and error code
        (what an erasure step records for each of the subjects it concerned)."""
        words = type(self).__name__
        if self.status is not None:
            words += f": HTTP {self.status}"
            if self.error:
                words += f" ({self.error[:40]})"
        elif self.__cause__ is not None:
            words += f": {type(self.__cause__).__name__}"
        return words


class HolderUnavailable(HolderError):
    """Transient failure: connection error, timeout, 5xx (also 408/429), or a garbled reply.

    Retrying later is the right reaction.
    """


class HolderRejected(HolderError):
    """The holder refused the request (a 4xx other than 408/429, or a redirect).

    Retrying the same request will not help.
    """
