"""The reference holder: a small standalone HTTP service implementing the holder protocol.

Standard library only -- this must never import Django.  It keeps its data in its own SQLite
file (WAL mode) and answers signed JSON requests::

    PUT    /subjects/{subject}/templates/{template}   store/replace one template (201 / 200)
    GET    /subjects/{subject}                         everything held about one subject
    DELETE /subjects/{subject}                         erase it (idempotent) -> {"erased": n}
    GET    /subjects?cursor=&limit=                    keyset-paginated list of subject ids
    POST   /events                                     record a recognition event
    GET    /health                                     liveness (unsigned)

See :mod:`biometrics.holder_protocol` for the signature scheme.  Run it with
``python -m biometrics.reference_holder --port 8765 --db holder.sqlite3 --secret-file FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import socket
import socketserver
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from biometrics.holder_protocol import (
    BAD_SIGNATURE,
    MAX_MODEL_LENGTH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_signature,
    parse_subject,
    validate_embedding,
)

__all__ = ["HolderHTTPServer", "HolderStore", "main", "make_server", "serve"]

log = logging.getLogger("guardian.reference_holder")

MAX_BODY_BYTES = 64 * 1024
#: Oversized bodies up to this size are read and discarded so the client gets its 413 cleanly.
_DRAIN_LIMIT = 1024 * 1024
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_LABEL_LENGTH = 100
REQUEST_TIMEOUT_SECONDS = 30

_DIGITS_RE = re.compile(r"\A[0-9]{1,9}\Z")
_SUBJECT_METHODS = frozenset({"GET", "PUT", "DELETE"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    subject   TEXT NOT NULL,
    template  TEXT NOT NULL,
    model     TEXT NOT NULL,
    embedding TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (subject, template)
);
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    subject  TEXT NOT NULL,
    device   TEXT NOT NULL,
    purpose  TEXT NOT NULL,
    distance REAL NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_subject_at ON events (subject, at);
"""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


class HolderStore:
    """The holder's SQLite store; one short-lived connection per operation."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        path = os.fspath(db_path)
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ValueError("the reference holder needs a database file path")
        self.db_path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        if not os.path.exists(self.db_path):
            # Biometric data: readable by the owner only (SQLite gives -wal/-shm the same mode).
            os.close(os.open(self.db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        with contextlib.closing(self.connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("could not switch %s to WAL mode (got %s)", self.db_path, mode)
            conn.executescript(_SCHEMA)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")  # an erasure must survive a power cut
        conn.execute("PRAGMA secure_delete=ON")  # overwrite erased content with zeros
        return conn

    @contextlib.contextmanager
    def _transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def put_template(
        self, subject: str, template: str, model: str, embedding: list[float]
    ) -> tuple[bool, str]:
        """Store or replace; return ``(created, stored_at)``."""
        stored_at = _now_iso()
        vector = json.dumps(embedding, allow_nan=False, separators=(",", ":"))
        with self._transaction() as conn:
            existed = conn.execute(
                "SELECT 1 FROM templates WHERE subject = ? AND template = ?", (subject, template)
            ).fetchone()
            conn.execute(
                "INSERT INTO templates (subject, template, model, embedding, stored_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (subject, template) DO UPDATE SET"
                " model = excluded.model, embedding = excluded.embedding,"
                " stored_at = excluded.stored_at",
                (subject, template, model, vector, stored_at),
            )
        return existed is None, stored_at

    def get_subject(self, subject: str) -> dict[str, Any] | None:
        with self._transaction(immediate=False) as conn:
            templates = conn.execute(
                "SELECT template, model, embedding, stored_at FROM templates"
                " WHERE subject = ? ORDER BY stored_at, template",
                (subject,),
            ).fetchall()
            events = conn.execute(
                "SELECT at, device, purpose, distance FROM events"
                " WHERE subject = ? ORDER BY at, id",
                (subject,),
            ).fetchall()
        if not templates and not events:
            return None
        return {
            "subject": subject,
            "templates": [
                {"template": t, "model": m, "embedding": json.loads(e), "stored_at": s}
                for t, m, e, s in templates
            ],
            "events": [
                {"at": at, "device": d, "purpose": p, "distance": dist} for at, d, p, dist in events
            ],
        }

    def delete_subject(self, subject: str) -> int:
        """Erase every template and event of ``subject`` in one transaction."""
        with self._transaction() as conn:
            erased = conn.execute("DELETE FROM templates WHERE subject = ?", (subject,)).rowcount
            erased += conn.execute("DELETE FROM events WHERE subject = ?", (subject,)).rowcount
        if erased:
            self._purge_wal()
        return erased

    def _purge_wal(self) -> None:
        # Old page images stay in the WAL until it is checkpointed and reset; try to do that
        # now, without waiting long for concurrent readers (the next writer will reuse it).
        try:
            with contextlib.closing(self.connect()) as conn:
                conn.execute("PRAGMA busy_timeout=200")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            log.debug("WAL checkpoint after erasure skipped", exc_info=True)

    def list_subjects(self, after: str | None, limit: int) -> tuple[list[str], str | None]:
        with contextlib.closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT subject FROM ("
                " SELECT subject FROM templates UNION SELECT subject FROM events"
                ") WHERE subject > ? ORDER BY subject LIMIT ?",
                (after or "", limit + 1),
            ).fetchall()
        subjects = [row[0] for row in rows[:limit]]
        next_cursor = subjects[-1] if len(rows) > limit else None
        return subjects, next_cursor

    def add_event(self, subject: str, device: str, purpose: str, distance: float, at: str) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO events (subject, device, purpose, distance, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (subject, device, purpose, distance, at),
            )
            return int(cursor.lastrowid)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


class _ClientGone(Exception):
    """The client vanished mid-request; there is nobody to answer."""


def _bad_subject(detail: str = "subject id must be a UUID") -> ApiError:
    return ApiError(400, "bad_subject", detail)


def _method_not_allowed(*allowed: str) -> ApiError:
    return ApiError(
        405, "method_not_allowed", "method not allowed here", {"Allow": ", ".join(allowed)}
    )


def _parse_segment(segment: str) -> str | None:
    return parse_subject(urllib.parse.unquote(segment, errors="replace"))


def _clean_for_log(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "body must be a JSON object")
    return data


def _label(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL_LENGTH:
        raise ApiError(
            400, f"bad_{key}", f"{key} must be a non-empty string of at most {MAX_LABEL_LENGTH}"
        )
    return value


class HolderHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store, the shared secret and the fault-drill counter."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: HolderStore,
        secret: str,
        fail_first: int = 0,
    ) -> None:
        if not secret:
            raise ValueError("the holder secret must not be empty")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.secret = secret
        self._fail_lock = threading.Lock()
        self._fail_remaining = max(0, int(fail_first))
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
    server_version = "GuardianReferenceHolder/1.0"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_SECONDS

    # -- entry points -----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _dispatch(self) -> None:
        started = time.monotonic()
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
                raise _method_not_allowed("GET", "HEAD")
            return 200, {"ok": True}, {}

        body = self._read_body()
        if self.server.take_injected_failure():
            return 500, {"error": "injected_failure", "detail": "simulated holder fault"}, {}
        self._authenticate(method, raw_path, body)
        status, payload = self._route(method, path, query, body)
        return status, payload, {}

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "length_required", "send a Content-Length, not chunked data")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        length_header = length_header.strip()
        if not _DIGITS_RE.match(length_header):
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

    def _authenticate(self, method: str, raw_path: str, body: bytes) -> None:
        reason = check_signature(
            self.server.secret,
            self.headers.get(TIMESTAMP_HEADER),
            method,
            raw_path,
            body,
            self.headers.get(SIGNATURE_HEADER),
        )
        if reason is None:
            return
        if reason == BAD_SIGNATURE:
            detail = f"missing or invalid {SIGNATURE_HEADER}/{TIMESTAMP_HEADER}"
        else:
            detail = f"{TIMESTAMP_HEADER} is too far from the holder's clock"
        raise ApiError(401, reason, detail)

    def _route(self, method: str, path: str, query: str, body: bytes) -> tuple[int, dict[str, Any]]:
        store = self.server.store

        if path == "/events":
            if method != "POST":
                raise _method_not_allowed("POST")
            return self._post_event(body)

        if path == "/subjects":
            if method == "GET":
                return self._list_subjects(query)
            if method in _SUBJECT_METHODS:
                raise _bad_subject("missing subject id")
            raise _method_not_allowed("GET")

        if path.startswith("/subjects/"):
            parts = path[len("/subjects/") :].split("/")
            subject = _parse_segment(parts[0])
            if subject is None and method in _SUBJECT_METHODS:
                raise _bad_subject()

            if len(parts) == 1:
                if method == "GET":
                    held = store.get_subject(subject)
                    if held is None:
                        raise ApiError(404, "not_found", "nothing held for this subject")
                    return 200, held
                if method == "DELETE":
                    return 200, {"erased": store.delete_subject(subject)}
                raise _method_not_allowed("GET", "DELETE")

            if parts[1] == "templates" and len(parts) <= 3:
                template = _parse_segment(parts[2]) if len(parts) == 3 else None
                if template is None and method in _SUBJECT_METHODS:
                    raise ApiError(400, "bad_template", "template id must be a UUID")
                if method == "PUT":
                    return self._put_template(subject, template, body)
                raise _method_not_allowed("PUT")

        raise ApiError(404, "not_found", "no such endpoint")

    def _put_template(self, subject: str, template: str, body: bytes) -> tuple[int, dict[str, Any]]:
        data = _json_object(body)
        embedding = validate_embedding(data.get("embedding"))
        if embedding is None:
            raise ApiError(400, "bad_embedding", "embedding must be 128 finite numbers")
        model = data.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_LENGTH:
            raise ApiError(
                400, "bad_model", f"model must be a non-empty string of at most {MAX_MODEL_LENGTH}"
            )
        created, stored_at = self.server.store.put_template(subject, template, model, embedding)
        return (201 if created else 200), {
            "subject": subject,
            "template": template,
            "stored_at": stored_at,
        }

    def _post_event(self, body: bytes) -> tuple[int, dict[str, Any]]:
        data = _json_object(body)
        subject = parse_subject(data.get("subject"))
        if subject is None:
            raise _bad_subject()
        device = _label(data, "device")
        purpose = _label(data, "purpose")
        distance = data.get("distance")
        if (
            isinstance(distance, bool)
            or not isinstance(distance, int | float)
            or not math.isfinite(float(distance))
            or distance < 0
        ):
            raise ApiError(400, "bad_distance", "distance must be a finite number >= 0")
        at = self._event_time(data.get("at"))
        event_id = self.server.store.add_event(subject, device, purpose, float(distance), at)
        return 201, {"id": event_id, "subject": subject, "at": at}

    @staticmethod
    def _event_time(value: Any) -> str:
        if value is None:
            return _now_iso()
        if not isinstance(value, str) or len(value) > 64:
            raise ApiError(400, "bad_at", "at must be an ISO-8601 timestamp")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ApiError(400, "bad_at", "at must be an ISO-8601 timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # naive times are taken as UTC
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    def _list_subjects(self, query: str) -> tuple[int, dict[str, Any]]:
        try:
            params = urllib.parse.parse_qs(query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            raise ApiError(400, "bad_query", "malformed query string") from None
        cursor_value = params.get("cursor", [""])[-1]
        cursor = None
        if cursor_value:
            cursor = parse_subject(cursor_value)
            if cursor is None:
                raise ApiError(400, "bad_cursor", "cursor must be a subject id")
        limit_value = params.get("limit", [""])[-1]
        if limit_value == "":
            limit = DEFAULT_PAGE_SIZE
        elif _DIGITS_RE.match(limit_value) and int(limit_value) >= 1:
            limit = min(int(limit_value), MAX_PAGE_SIZE)
        else:
            raise ApiError(400, "bad_limit", f"limit must be an integer 1..{MAX_PAGE_SIZE}")
        subjects, next_cursor = self.server.store.list_subjects(cursor, limit)
        return 200, {"subjects": subjects, "next_cursor": next_cursor}

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
        self.end_headers()
        if self.command != "HEAD" and status >= 200 and status not in (204, 304):
            self.wfile.write(body)

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
            "%s %s %s %d%s",
            self.client_address[0],
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


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def make_server(
    host: str,
    port: int,
    db_path: str | os.PathLike[str],
    secret: str,
    *,
    fail_first: int = 0,
) -> HolderHTTPServer:
    """Open (creating if needed) the store and bind the server; does not start serving.

    ``port=0`` picks a free port (read it back from ``server.server_port``).  ``fail_first``
    makes the first N requests other than ``/health`` answer 500 (fault drills).
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("the holder secret must not be empty")
    store = HolderStore(db_path)
    return HolderHTTPServer((host, int(port)), store, secret, fail_first=fail_first)


def serve(
    host: str,
    port: int,
    db_path: str | os.PathLike[str],
    secret: str,
    *,
    fail_first: int = 0,
) -> None:
    """Run the reference holder until interrupted (KeyboardInterrupt / SystemExit)."""
    server = make_server(host, port, db_path, secret, fail_first=fail_first)
    log.info(
        "reference holder listening on %s (db %s%s)",
        server.url,
        server.store.db_path,
        f", failing the first {fail_first} requests" if fail_first else "",
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("reference holder stopped")


def _read_secret_file(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m biometrics.reference_holder",
        description="Guardian reference holder: keeps template copies, erases them on request.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument(
        "--db",
        default=os.environ.get("HOLDER_DB", "reference_holder.sqlite3"),
        help="SQLite file (default $HOLDER_DB or ./reference_holder.sqlite3)",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="shared HMAC secret (visible in ps; prefer --secret-file)")
    secret.add_argument("--secret-file", help="file whose content is the shared secret")
    parser.add_argument(
        "--fail-first",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="answer 500 to the first N requests other than /health (default $HOLDER_FAIL_FIRST)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.secret:
        secret = args.secret
    elif args.secret_file:
        try:
            secret = _read_secret_file(args.secret_file)
        except OSError as exc:
            parser.error(f"cannot read --secret-file: {exc.strerror}")
    else:
        secret = os.environ.get("HOLDER_SECRET", "")
        if not secret and os.environ.get("HOLDER_SECRET_FILE"):
            try:
                secret = _read_secret_file(os.environ["HOLDER_SECRET_FILE"])
            except OSError as exc:
                parser.error(f"cannot read $HOLDER_SECRET_FILE: {exc.strerror}")
    if not secret:
        parser.error("a secret is required: --secret, --secret-file or $HOLDER_SECRET")

    fail_first = args.fail_first
    if fail_first is None:
        try:
            fail_first = _non_negative_int(os.environ.get("HOLDER_FAIL_FIRST", "0") or "0")
        except argparse.ArgumentTypeError as exc:
            parser.error(f"$HOLDER_FAIL_FIRST: {exc}")

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, _terminate)

    try:
        serve(args.host, args.port, args.db, secret, fail_first=fail_first)
    except OSError as exc:
        log.error("cannot start the reference holder: %s", exc)
        return 1
    except SystemExit:
        return 0
    return 0
