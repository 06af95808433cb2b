"""The Guardian holder protocol: the contract both sides share (standard library only).

A *holder* is an external system that keeps a copy of a child's face templates (a gate
controller, a canteen till, a vendor server).  Guardian pushes templates to holders and erases
them again when consent is withdrawn.  This module is imported by the portal's client
(:mod:`biometrics.holders.client`) and by the reference holder (``biometrics.reference_holder``),
so it deliberately uses the standard library only -- it must never import Django.

Every request carries two headers::

    X-Guardian-Timestamp: <unix seconds, integer>
    X-Guardian-Signature: hex(HMAC-SHA256(secret, ts "\\n" METHOD "\\n" path "\\n" || body))

``path`` is the request target exactly as sent on the wire, including the query string
(``/subjects?cursor=...``).  Requests whose timestamp is more than :data:`MAX_SKEW_SECONDS` away
from the receiver's clock are refused, which bounds the window in which a captured request can
be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
import uuid
from typing import Any, TypeGuard

__all__ = [
    "BAD_SIGNATURE",
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_RULE",
    "MAX_MODEL_LENGTH",
    "MAX_SKEW_SECONDS",
    "MODEL_RULE",
    "SIGNATURE_HEADER",
    "STALE_REQUEST",
    "TIMESTAMP_HEADER",
    "HolderError",
    "HolderRejected",
    "HolderUnavailable",
    "check_signature",
    "parse_subject",
    "secret_bytes",
    "sign",
    "signed_headers",
    "valid_model",
    "validate_embedding",
]

SIGNATURE_HEADER = "X-Guardian-Signature"
TIMESTAMP_HEADER = "X-Guardian-Timestamp"
MAX_SKEW_SECONDS = 300

#: Length of a face template (dlib / face_recognition embeddings are 128-d).
EMBEDDING_DIMENSIONS = 128
#: Longest accepted ``model`` label.
MAX_MODEL_LENGTH = 100

# The same words whether the client refuses a template locally or the holder answers 400.
EMBEDDING_RULE = f"embedding must be {EMBEDDING_DIMENSIONS} finite numbers"
MODEL_RULE = f"model must be a non-empty string of at most {MAX_MODEL_LENGTH}"

# Reasons returned by check_signature(); also the ``error`` codes of the holder's 401 replies.
BAD_SIGNATURE = "bad_signature"
STALE_REQUEST = "stale_request"

# Canonical 8-4-4-4-12 form or 32 bare hex digits.  Nothing else (no braces, no "urn:uuid:",
# no surrounding whitespace) so that a wildcard or an empty value can never be mistaken for an id.
_UUID_RE = re.compile(
    r"\A(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})\Z"
)
_TIMESTAMP_RE = re.compile(r"\A[0-9]{1,12}\Z")
_SIGNATURE_RE = re.compile(r"\A[0-9a-fA-F]{64}\Z")


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


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 signature of one request.

    The signed message is ``timestamp + "\\n" + METHOD + "\\n" + path + "\\n"`` (UTF-8) followed by
    the raw body bytes.  ``method`` is upper-cased; ``path`` must include the query string.
    """
    if body is None:
        body = b""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be bytes")
    head = f"{timestamp}\n{method.upper()}\n{path}\n".encode()
    mac = hmac.new(secret_bytes(secret), head, hashlib.sha256)
    mac.update(bytes(body))
    return mac.hexdigest()


def check_signature(
    secret: str,
    timestamp: str | None,
    method: str,
    path: str,
    body: bytes,
    signature: str | None,
    now: float | None = None,
) -> str | None:
    """Verify a request; return ``None`` if it is good, else the reason.

    The reason is :data:`STALE_REQUEST` (``"stale_request"``) for a well-formed timestamp more
    than :data:`MAX_SKEW_SECONDS` older or newer than ``now`` (default: the current time), and
    :data:`BAD_SIGNATURE` (``"bad_signature"``) for anything else (missing or malformed headers,
    a timestamp that is not an integer, wrong signature, empty secret).  The comparison is
    constant-time.
    """
    if not isinstance(timestamp, str) or not _TIMESTAMP_RE.match(timestamp):
        return BAD_SIGNATURE
    if not isinstance(signature, str) or not _SIGNATURE_RE.match(signature):
        return BAD_SIGNATURE
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_SKEW_SECONDS:
        return STALE_REQUEST
    try:
        expected = sign(secret, timestamp, method, path, body)
    except (TypeError, ValueError):
        return BAD_SIGNATURE
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("ascii")):
        return BAD_SIGNATURE
    return None


def signed_headers(
    secret: str, method: str, path: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The two authentication headers for a request (timestamp = ``int(now or time.time())``)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, method, path, body),
    }


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


class HolderUnavailable(HolderError):
    """Transient failure: connection error, timeout, 5xx (also 408/429), or a garbled reply.

    Retrying later is the right reaction.
    """


class HolderRejected(HolderError):
    """The holder refused the request (a 4xx other than 408/429, or a redirect).

    Retrying the same request will not help.
    """
