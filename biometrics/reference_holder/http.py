"""The reference holder's HTTP transport: server, request handler and logging (stdlib only).

HTTP/1.1 with persistent connections (one thread per connection, not per request). The handler
reads a bounded body, finds the tenant from the signing key, checks the signature, the time
window and the nonce (:mod:`biometrics.holders.protocol`), hands the request to
:func:`.routes.route` and writes JSON.  ``GET /health`` is answered before any of that,
unsigned.  One log line per request, never the body (it carries embeddings).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import socketserver
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from biometrics.holders.protocol import (
    BAD_SIGNATURE,
    KEY_HEADER,
    NONCE_HEADER,
    REPLAYED_REQUEST,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    NonceCache,
    check_signature,
    key_id,
)

from .routes import ApiError, Caller, method_not_allowed, route
from .store import LEGACY_TENANT, HolderStore

__all__ = ["HolderHTTPServer", "HolderRequestHandler", "make_server"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
#: Oversized bodies up to this size are read and discarded so the client gets its 413 cleanly.
_DRAIN_LIMIT = 1024 * 1024
#: A kept-alive connection idle this long is closed (the client reconnects).
REQUEST_TIMEOUT_SECONDS = 30

_CONTENT_LENGTH_RE = re.compile(r"\A[0-9]{1,9}\Z")


class _ClientGone(Exception):
    """The client vanished mid-request; there is nobody to answer."""


def _clean_for_log(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.encode("unicode_escape").decode("ascii")


def tenant_keys(tenants: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{key id: (tenant, secret)} for {tenant: secret}; every tenant needs a secret of its own."""
    keys: dict[str, tuple[str, str]] = {}
    for name, secret in tenants.items():
        if not name or not isinstance(secret, str) or not secret:
            raise ValueError("every tenant needs a name and a non-empty secret")
        kid = key_id(secret)
        if kid in keys:
            raise ValueError(f"tenants {keys[kid][0]!r} and {name!r} share a secret")
        keys[kid] = (name, secret)
    return keys


class HolderHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store, the tenants' keys, the nonces seen and the
    fault-drill settings."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: HolderStore,
        tenants: dict[str, str],
        fail_first: int = 0,
        delay_ms: int = 0,
    ) -> None:
        self.keys = tenant_keys(tenants)
        if not self.keys:
            raise ValueError("the holder needs at least one tenant secret")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.nonces = NonceCache()  # requests signed before this start are refused
        self._fail_lock = threading.Lock()
        self._fail_remaining = max(0, int(fail_first))
        self.delay = max(0, int(delay_ms)) / 1000
        super().__init__(address, HolderRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn); not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def take_injected_failure(self) -> bool:
        with self._fail_lock:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return True
            return False

    @property
    def url(self) -> str:
        host = self.server_name
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server_port}"


class HolderRequestHandler(BaseHTTPRequestHandler):
    server: HolderHTTPServer
    server_version = "GuardianReferenceHolder/2.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # persistent connections; every reply has a Content-Length
    disable_nagle_algorithm = True
    timeout = REQUEST_TIMEOUT_SECONDS
    tenant = "-"
    _headers_buffer: list[bytes]  # http.server's, filled by send_header()

    # -- entry points -----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _dispatch(self) -> None:
        started = time.monotonic()
        self.tenant = "-"
        try:
            status, payload, headers = self._handle()
        except _ClientGone:
            self.close_connection = True
            self._log_request(499, started)
            return
        except ApiError as exc:
            status = exc.status
            payload = {"error": exc.error}
            if exc.status == 401:
                payload["detail"] = exc.detail
            headers = exc.headers
        except Exception:
            # Full details go to the server log only; the client learns nothing internal.
            log.exception("unexpected error handling %s %s", self.command, self._log_path())
            status = 500
            payload = {"error": "internal", "detail": "unexpected server error"}
            headers = {}
        try:
            self._send_json(status, payload, headers)
        except OSError:
            self.close_connection = True
        self._log_request(status, started)

    # -- request processing -------------------------------------------------------------------

    def _handle(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        method = self.command
        raw_path = self.path
        path, _, query = raw_path.partition("?")

        if path == "/health":
            if method not in ("GET", "HEAD"):
                raise method_not_allowed("GET", "HEAD")
            return 200, {"ok": True}, {}

        body = self._read_body()
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.take_injected_failure():
            return 500, {"error": "injected_failure", "detail": "simulated holder fault"}, {}
        caller = self._authenticate(method, raw_path, body)
        status, payload = route(self.server.store, caller, method, path, query, body)
        return status, payload, {}

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "length_required", "send a Content-Length, not chunked data")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        length_header = length_header.strip()
        if not _CONTENT_LENGTH_RE.match(length_header):
            self.close_connection = True
            raise ApiError(400, "bad_request", "invalid Content-Length")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            if length <= _DRAIN_LIMIT:
                self._drain(length)
            raise ApiError(413, "too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
        if length == 0:
            return b""
        try:
            body = self.rfile.read(length)
        except OSError:
            raise _ClientGone() from None
        if len(body) < length:
            raise _ClientGone()
        return body

    def _drain(self, length: int) -> None:
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    return
                remaining -= len(chunk)
        except OSError:
            return

    def _authenticate(self, method: str, raw_path: str, body: bytes) -> Caller:
        """The tenant whose key signed the request, once signature, window and nonce hold."""
        kid = self.headers.get(KEY_HEADER, "")
        timestamp = self.headers.get(TIMESTAMP_HEADER)
        nonce = self.headers.get(NONCE_HEADER)
        tenant, secret = self.server.keys.get(kid, ("", ""))
        reason = (
            check_signature(
                secret, timestamp, nonce, method, raw_path, body, self.headers.get(SIGNATURE_HEADER)
            )
            if secret
            else BAD_SIGNATURE
        )
        if reason is None and timestamp and nonce:
            reason = self.server.nonces.accept(kid, nonce, timestamp)
        if reason is None and timestamp:
            self.tenant = tenant
            return Caller(tenant=tenant, signed_at=int(timestamp))
        reason = reason or BAD_SIGNATURE
        if reason == BAD_SIGNATURE:
            detail = f"missing or invalid {KEY_HEADER}/{NONCE_HEADER}/{SIGNATURE_HEADER}"
        elif reason == REPLAYED_REQUEST:
            detail = "this nonce was used already"
        else:
            detail = f"{TIMESTAMP_HEADER} is outside the holder's window"
        raise ApiError(401, reason, detail)

    # -- responses and logging ----------------------------------------------------------------

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write: two small writes on a kept-alive connection would wait
        # for the client's delayed ACK (Nagle), ~40 ms a request.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and status >= 200 and status not in (204, 304):
            self._headers_buffer.append(body)
        self.flush_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors from http.server (bad request line, unknown method...) as JSON."""
        if code == HTTPStatus.NOT_IMPLEMENTED and getattr(self, "command", None):
            code = HTTPStatus.METHOD_NOT_ALLOWED  # an unknown method is just a wrong method
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        error = {
            400: "bad_request",
            405: "method_not_allowed",
            408: "timeout",
            414: "uri_too_long",
            431: "headers_too_large",
            505: "http_version_not_supported",
        }.get(code, "error")
        self.close_connection = True
        try:
            self._send_json(code, {"error": error, "detail": phrase}, {})
        except OSError:
            pass
        self._log_request(code, None)

    def _log_path(self) -> str:
        return _clean_for_log(getattr(self, "path", None) or "-")

    def _log_request(self, status: int, started: float | None) -> None:
        elapsed = "" if started is None else f" {1000 * (time.monotonic() - started):.1f}ms"
        log.info(
            "%s %s %s %s %d%s",
            self.client_address[0],
            _clean_for_log(self.tenant, 40),
            _clean_for_log(getattr(self, "command", None) or "-", 20),
            self._log_path(),
            status,
            elapsed,
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by :meth:`_log_request` (one line per request, never the body)."""

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("http.server: " + format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.server: " + format, *args)


def make_server(
    host: str,
    port: int,
    db_path: str | os.PathLike[str],
    secret: str | None = None,
    *,
    tenants: dict[str, str] | None = None,
    fail_first: int = 0,
    delay_ms: int = 0,
) -> HolderHTTPServer:
    """Open (creating if needed) the store and bind the server; does not start serving.

    ``secret`` alone is one tenant (``"default"``); ``tenants`` maps each tenant's name to its
    own secret (a school each, say), and the two may be combined. ``port=0`` picks a free port
    (read it back from ``server.server_port``).  ``fail_first`` makes the first N requests other
    than ``/health`` answer 500, ``delay_ms`` delays every one of them (fault drills).
    """
    all_tenants = dict(tenants or {})
    if secret is not None:
        if not isinstance(secret, str) or not secret:
            raise ValueError("the holder secret must not be empty")
        all_tenants.setdefault(LEGACY_TENANT, secret)
    tenant_keys(all_tenants)  # refuse a bad configuration before touching the store
    store = HolderStore(db_path)
    return HolderHTTPServer(
        (host, int(port)), store, all_tenants, fail_first=fail_first, delay_ms=delay_ms
    )
