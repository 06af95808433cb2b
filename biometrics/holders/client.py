"""The portal's side of the holder protocol: :class:`HolderClient` (standard library only).

Get one for a configured holder with ``Holder.client(timeout=...)``; the wire contract it speaks
(signing, ids, template rules, error classes) is :mod:`biometrics.holders.protocol`.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from .protocol import (
    EMBEDDING_RULE,
    MODEL_RULE,
    HolderError,
    HolderRejected,
    HolderUnavailable,
    parse_subject,
    secret_bytes,
    signed_headers,
    valid_model,
    validate_embedding,
)

__all__ = ["HolderClient"]


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
        secret_bytes(secret)  # refuse an empty secret early
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
            raise ValueError(EMBEDDING_RULE)
        if not valid_model(model):
            raise ValueError(MODEL_RULE)
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

    def iter_subjects(self, limit: int | None = None) -> Iterator[str]:
        """Yield every subject id held, following the cursor across pages."""
        cursor: str | None = None
        while True:
            subjects, cursor = self.list_subjects(cursor, limit)
            yield from subjects
            if not cursor:
                return

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
