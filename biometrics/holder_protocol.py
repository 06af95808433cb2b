"""The Guardian holder protocol: request signing, id validation and an HTTP client.

A *holder* is an external system that keeps a copy of a child's face templates (a gate
controller, a canteen till, a vendor server).  Guardian pushes templates to holders and erases
them again when consent is withdrawn.  This module is shared by the portal (through
:class:`HolderClient`) and by the reference holder (``biometrics.reference_holder``), so it
deliberately uses the standard library only -- it must never import Django.

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
import http.client
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "MAX_MODEL_LENGTH",
    "MAX_SKEW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HolderClient",
    "HolderError",
    "HolderRejected",
    "HolderUnavailable",
    "check_signature",
    "parse_subject",
    "parse_template",
    "sign",
    "signed_headers",
    "validate_embedding",
    "verify",
]

SIGNATURE_HEADER = "X-Guardian-Signature"
TIMESTAMP_HEADER = "X-Guardian-Timestamp"
MAX_SKEW_SECONDS = 300

#: Length of a face template (dlib / face_recognition embeddings are 128-d).
EMBEDDING_DIMENSIONS = 128
#: Longest accepted ``model`` label.
MAX_MODEL_LENGTH = 100

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


def _secret_bytes(secret: str | bytes) -> bytes:
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
    mac = hmac.new(_secret_bytes(secret), head, hashlib.sha256)
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

    The reason is :data:`STALE_REQUEST` (``"stale_request"``) for a well-formed timestamp outside
    the allowed skew, and :data:`BAD_SIGNATURE` (``"bad_signature"``) for anything else (missing
    or malformed headers, wrong signature, empty secret).
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


def verify(
    secret: str,
    timestamp: str,
    method: str,
    path: str,
    body: bytes,
    signature: str,
    now: float | None = None,
) -> bool:
    """True if ``signature`` is valid for the request and ``timestamp`` is fresh.

    False if the timestamp is not an integer, or is more than :data:`MAX_SKEW_SECONDS` older or
    newer than ``now`` (default: the current time).  The comparison is constant-time.
    """
    return check_signature(secret, timestamp, method, path, body, signature, now) is None


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


def parse_subject(value: str) -> str | None:
    """Return the canonical lower-case UUID string for ``value``, or ``None`` if it is not one.

    Only the hyphenated 8-4-4-4-12 form and 32 bare hex digits are accepted, case-insensitively.
    Empty strings, whitespace, wildcards (``"*"``, ``"all"``), braces, ``urn:uuid:`` prefixes and
    non-string values all give ``None``.
    """
    if not isinstance(value, str) or not _UUID_RE.match(value):
        return None
    return str(uuid.UUID(value))


#: Template ids follow the same rules as subject ids.
parse_template = parse_subject


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


def _valid_model(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_MODEL_LENGTH


# --------------------------------------------------------------------------------------------
# Client
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A signed request must never be replayed against another URL.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_TRANSIENT_4XX = frozenset({408, 429})
_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def _require_id(value: Any, kind: str) -> str:
    parsed = parse_subject(value)
    if parsed is None:
        raise ValueError(f"invalid {kind} id: {value!r} (expected a UUID)")
    return parsed


class HolderClient:
    """Talks to one holder over HTTP(S) with signed requests (urllib only).

    Invalid subject or template ids are refused locally with :class:`ValueError` before any
    network I/O.  Transient problems raise :class:`HolderUnavailable`; refusals raise
    :class:`HolderRejected`.  Environment proxies are ignored and redirects are not followed.
    """

    def __init__(self, base_url: str, secret: str, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"holder URL must be http(s)://host[:port][/prefix], not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError("holder URL must not carry a query string or fragment")
        _secret_bytes(secret)  # refuse an empty secret early
        self.base_url = base_url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._secret = secret
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def __repr__(self) -> str:  # never show the secret
        return f"HolderClient({self.base_url!r})"

    # -- public API -----------------------------------------------------------------------

    def put_template(self, subject: str, template: str, embedding: list[float], model: str) -> dict:
        """Store or replace one template.

        Returns the holder's reply ``{"subject", "template", "stored_at"}`` plus ``"created"``
        (True on 201, False when an existing template was replaced).
        """
        subject_id = _require_id(subject, "subject")
        template_id = _require_id(template, "template")
        vector = validate_embedding(embedding)
        if vector is None:
            raise ValueError(f"embedding must be {EMBEDDING_DIMENSIONS} finite numbers")
        if not _valid_model(model):
            raise ValueError(f"model must be a non-empty string of at most {MAX_MODEL_LENGTH}")
        body = json.dumps(
            {"embedding": vector, "model": model}, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
        status, data = self._request("PUT", f"/subjects/{subject_id}/templates/{template_id}", body)
        data = dict(data)
        data["created"] = status == 201
        return data

    def get_subject(self, subject: str) -> dict | None:
        """Everything the holder keeps about ``subject``, or ``None`` if it holds nothing."""
        subject_id = _require_id(subject, "subject")
        status, data = self._request("GET", f"/subjects/{subject_id}", allow_404=True)
        return None if status == 404 else data

    def delete_subject(self, subject: str) -> int:
        """Erase all templates and events of ``subject``; return how many rows were erased."""
        subject_id = _require_id(subject, "subject")
        _, data = self._request("DELETE", f"/subjects/{subject_id}")
        erased = data.get("erased")
        if isinstance(erased, bool) or not isinstance(erased, int):
            raise HolderUnavailable("holder reply lacks an integer 'erased'", 200, data)
        return erased

    def list_subjects(
        self, cursor: str | None = None, limit: int | None = None
    ) -> tuple[list[str], str | None]:
        """One page of subject ids held, sorted, and the cursor of the next page (or ``None``)."""
        query: dict[str, str] = {}
        if cursor:
            query["cursor"] = cursor
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError("limit must be a positive integer")
            query["limit"] = str(limit)
        path = "/subjects"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        _, data = self._request("GET", path)
        subjects = data.get("subjects")
        next_cursor = data.get("next_cursor")
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise HolderUnavailable("holder reply lacks a 'subjects' list", 200, data)
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise HolderUnavailable("holder reply has a malformed 'next_cursor'", 200, data)
        return subjects, next_cursor or None

    def iter_subjects(self, limit: int | None = None):
        """Yield every subject id held, following the cursor across pages."""
        cursor: str | None = None
        while True:
            subjects, cursor = self.list_subjects(cursor, limit)
            yield from subjects
            if not cursor:
                return

    def post_event(
        self,
        subject: str,
        device: str,
        purpose: str,
        distance: float,
        at: str | None = None,
    ) -> dict:
        """Record a recognition event in the holder's own trail (``at``: ISO-8601, default now)."""
        subject_id = _require_id(subject, "subject")
        payload: dict[str, Any] = {
            "subject": subject_id,
            "device": device,
            "purpose": purpose,
            "distance": distance,
        }
        if at is not None:
            payload["at"] = at
        try:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event is not serialisable: {exc}") from None
        _, data = self._request("POST", "/events", body)
        return data

    def health(self) -> bool:
        """True if the holder answers ``GET /health`` with ``{"ok": true}``; never raises."""
        try:
            _, data = self._request("GET", "/health")
        except HolderError:
            return False
        return data.get("ok") is True

    # -- plumbing -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: bytes = b"", *, allow_404: bool = False
    ) -> tuple[int, dict]:
        full_path = self._prefix + path
        headers = signed_headers(self._secret, method, full_path, body)
        headers["Accept"] = "application/json"
        if body or method in ("PUT", "POST"):
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self._origin + full_path,
            data=body if (body or method in ("PUT", "POST")) else None,
            headers=headers,
            method=method,
        )
        where = f"{method} {self.base_url}{path}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                raw = response.read(_MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                raw = exc.read(_MAX_RESPONSE_BYTES + 1)
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
            payload = _decode(raw)
            if status == 404 and allow_404:
                return status, payload if isinstance(payload, dict) else {}
            message = f"{where} -> HTTP {status}"
            if isinstance(payload, dict) and payload.get("error"):
                message += f" ({payload['error']})"
            if status >= 500 or status in _TRANSIENT_4XX:
                raise HolderUnavailable(message, status, payload) from None
            raise HolderRejected(message, status, payload) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # URLError wraps refused/unreachable; TimeoutError and resets are OSErrors;
            # RemoteDisconnected/IncompleteRead are HTTPExceptions.
            reason = getattr(exc, "reason", exc)
            raise HolderUnavailable(f"{where} failed: {reason}") from exc
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise HolderUnavailable(f"{where}: reply too large", status)
        payload = _decode(raw)
        if not isinstance(payload, dict):
            raise HolderUnavailable(f"{where}: reply is not a JSON object", status, payload)
        return status, payload


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:2000].decode("utf-8", "replace")
