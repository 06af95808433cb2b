"""The portal's side of the holder protocol: :class:`HolderClient` (standard library only).

Get one for a configured holder with ``Holder.client(timeout=...)``; the wire contract it speaks
(signing, ids, template rules, error classes) is :mod:`biometrics.holders.protocol`.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from .protocol import (
    EMBEDDING_RULE,
    MAX_BATCH_SUBJECTS,
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

_TRANSIENT_4XX = frozenset({408, 429})
_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# A kept-alive connection the holder closed while idle fails like this on its next use.
_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
_ID_IN_PATH = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def _require_id(value: Any, kind: str) -> str:
    parsed = parse_subject(value)
    if parsed is None:
        raise ValueError(f"invalid {kind} id: {value!r} (expected a UUID)")
    return parsed


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class HolderClient:
    """Talks to one holder over HTTP(S) with signed requests, on one persistent connection.

    Invalid subject or template ids are refused locally with :class:`ValueError` before any
    network I/O.  Transient problems raise :class:`HolderUnavailable`; refusals raise
    :class:`HolderRejected`.  Environment proxies are ignored and redirects are not followed.
    Not thread-safe: one client per thread (``close()`` it, or use it as a context manager).
    Error messages never carry a subject or template id.
    """

    def __init__(self, base_url: str, secret: str, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"holder URL must be http(s)://host[:port][/prefix], not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError("holder URL must not carry a query string or fragment")
        secret_bytes(secret)  # refuse an empty secret early
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise ValueError(f"holder URL has an invalid port: {base_url!r}") from None
        self.base_url = base_url.rstrip("/")
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self._secret = secret
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"HolderClient({self.base_url!r})"

    def __enter__(self) -> HolderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- public API -----------------------------------------------------------------------

    def put_template(
        self,
        subject: str,
        template: str,
        embedding: list[float],
        model: str,
        created_at: datetime | str | None = None,
    ) -> dict:
        """Store or replace one template. ``created_at`` (when the portal made the template)
        lets the holder refuse a copy older than the subject's last erasure (410).

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
        document: dict[str, Any] = {"embedding": vector, "model": model}
        if created_at is not None:
            document["created_at"] = _iso(created_at)
        body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode("utf-8")
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

    def delete_subjects(self, subjects: Iterable[str]) -> dict[str, int]:
        """Erase an explicit list of subjects in one request (``POST /erasures``); return
        {subject: items erased} for every subject named. Never "all": an empty list is refused
        here, before any network call."""
        ids = list(dict.fromkeys(_require_id(s, "subject") for s in subjects))
        if not ids:
            raise ValueError("name at least one subject to erase")
        if len(ids) > MAX_BATCH_SUBJECTS:
            raise ValueError(f"at most {MAX_BATCH_SUBJECTS} subjects per request")
        body = json.dumps({"subjects": ids}, separators=(",", ":")).encode("utf-8")
        _, data = self._request("POST", "/erasures", body)
        erased = data.get("erased")
        if not isinstance(erased, dict) or set(erased) != set(ids):
            raise HolderUnavailable("holder reply lacks an 'erased' count per subject", 200)
        counts: dict[str, int] = {}
        for subject, n in erased.items():
            if isinstance(n, bool) or not isinstance(n, int):
                raise HolderUnavailable("holder reply has a malformed 'erased' count", 200)
            counts[subject] = n
        return counts

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

    #: The connection classes (a subclass may open its sockets its own way).
    http_connection: type[http.client.HTTPConnection] = http.client.HTTPConnection
    https_connection: type[http.client.HTTPSConnection] = http.client.HTTPSConnection

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._parts.scheme == "https":
                self._conn = self.https_connection(
                    host, port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = self.http_connection(host, port, timeout=self.timeout)
        return self._conn

    def _exchange(self, method: str, full_path: str, body: bytes) -> tuple[int, bytes]:
        """One request on the kept-alive connection: (status, body). Signed at the moment it
        is sent, with a nonce of its own."""
        conn = self._connection()
        headers = signed_headers(self._secret, method, full_path, body)
        headers["Accept"] = "application/json"
        if body or method in ("PUT", "POST"):
            headers["Content-Type"] = "application/json"
        conn.request(method, full_path, body=body if body else None, headers=headers)
        response = conn.getresponse()
        raw = response.read(_MAX_RESPONSE_BYTES + 1)
        if len(raw) > _MAX_RESPONSE_BYTES or response.will_close:
            self.close()  # what is left unread cannot be skipped; the next call reconnects
        return response.status, raw

    def _request(
        self, method: str, path: str, body: bytes = b"", *, allow_404: bool = False
    ) -> tuple[int, dict]:
        full_path = self._prefix + path
        where = f"{method} {self.base_url}{_ID_IN_PATH.sub('{id}', path)}"
        reused = self._conn is not None and self._conn.sock is not None
        try:
            try:
                status, raw = self._exchange(method, full_path, body)
            except _STALE_CONNECTION:
                if not reused:
                    raise
                # The holder closed the idle connection: once more on a new one, newly signed.
                self.close()
                status, raw = self._exchange(method, full_path, body)
        except (OSError, http.client.HTTPException) as exc:
            # Refused/unreachable, timeouts and resets are OSErrors; a garbled reply is an
            # HTTPException.
            self.close()
            raise HolderUnavailable(f"{where} failed: {type(exc).__name__}") from exc
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise HolderUnavailable(f"{where}: reply too large", status)
        payload = _decode(raw)
        if status >= 300:
            if status == 404 and allow_404:
                return status, payload if isinstance(payload, dict) else {}
            message = f"{where} -> HTTP {status}"
            if isinstance(payload, dict) and isinstance(payload.get("error"), str):
                message += f" ({payload['error'][:40]})"
            if status >= 500 or status in _TRANSIENT_4XX:
                raise HolderUnavailable(message, status, payload)
            raise HolderRejected(message, status, payload)  # 3xx never followed, 4xx refused
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
