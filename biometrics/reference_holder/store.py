"""The reference holder's store: one SQLite file (WAL mode), standard library only.

Everything is kept per tenant (a school, named by the key that signs its requests): no query
reads or erases across tenants. Templates and recognition events are kept per subject; erasing a
subject removes both in one transaction, leaves a tombstone (the time of the erasure), and then
tries to purge the old page images from the WAL. A tombstone refuses any copy made before it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from biometrics.holders.protocol import TOMBSTONE_MARGIN_SECONDS

__all__ = ["LEGACY_TENANT", "HolderStore", "SubjectErased", "now_iso"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: The tenant that rows written before tenants existed (schema 1) belong to: the holder's
#: single secret is that tenant when it runs with ``--secret``.
LEGACY_TENANT = "default"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    tenant    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    template  TEXT NOT NULL,
    model     TEXT NOT NULL,
    embedding TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (tenant, subject, template)
);
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    tenant   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    device   TEXT NOT NULL,
    purpose  TEXT NOT NULL,
    distance REAL NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tenant_subject_at ON events (tenant, subject, at);
CREATE TABLE IF NOT EXISTS tombstones (
    tenant    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    erased_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, subject)
);
"""

# Schema 1 (no tenants, no tombstones): its tables are renamed, schema 2 created, and their
# rows moved to LEGACY_TENANT ('default').
_RENAME_V1 = """
ALTER TABLE templates RENAME TO templates_v1;
ALTER TABLE events RENAME TO events_v1;
DROP INDEX IF EXISTS events_subject_at;
"""
_MOVE_V1 = """
INSERT INTO templates SELECT 'default', subject, template, model, embedding, stored_at
    FROM templates_v1;
INSERT INTO events SELECT id, 'default', subject, device, purpose, distance, at
    FROM events_v1;
DROP TABLE templates_v1;
DROP TABLE events_v1;
"""


def now_iso() -> str:
    """The holder's timestamp format (UTC, microseconds), for ``stored_at`` and event times."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SubjectErased(Exception):
    """The subject was erased after this copy (or event) was made: it must not come back."""


class HolderStore:
    """The holder's SQLite store; one connection per thread, kept for the thread's life (a
    kept-alive HTTP connection is served by one thread)."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        path = os.fspath(db_path)
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ValueError("the reference holder needs a database file path")
        self.db_path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        if not os.path.exists(self.db_path):
            # Biometric data: readable by the owner only (SQLite gives -wal/-shm the same mode).
            os.close(os.open(self.db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._local = threading.local()
        with contextlib.closing(self.connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("could not switch %s to WAL mode (got %s)", self.db_path, mode)
            self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        columns = {row[1] for row in conn.execute("PRAGMA table_info(templates)")}
        upgrade = bool(columns) and "tenant" not in columns
        script = f"{_RENAME_V1}{_SCHEMA}{_MOVE_V1}" if upgrade else _SCHEMA
        try:  # one transaction: a crash half-way leaves the old schema as it was
            conn.executescript(
                f"BEGIN IMMEDIATE;{script}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.db_path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=FULL")  # an erasure must survive a power cut
        conn.execute("PRAGMA secure_delete=ON")  # overwrite erased content with zeros
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    @contextlib.contextmanager
    def _transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _erased_at(conn: sqlite3.Connection, tenant: str, subject: str) -> int | None:
        row = conn.execute(
            "SELECT erased_at FROM tombstones WHERE tenant = ? AND subject = ?", (tenant, subject)
        ).fetchone()
        return None if row is None else int(row[0])

    def put_template(
        self,
        tenant: str,
        subject: str,
        template: str,
        model: str,
        embedding: list[float],
        created_at: float,
    ) -> tuple[bool, str]:
        """Store or replace; return ``(created, stored_at)``. Raises :class:`SubjectErased`
        when the copy was made (``created_at``, unix seconds) before the subject's erasure."""
        stored_at = now_iso()
        vector = json.dumps(embedding, allow_nan=False, separators=(",", ":"))
        with self._transaction() as conn:
            erased_at = self._erased_at(conn, tenant, subject)
            if erased_at is not None and created_at < erased_at + TOMBSTONE_MARGIN_SECONDS:
                raise SubjectErased(subject)
            existed = conn.execute(
                "SELECT 1 FROM templates WHERE tenant = ? AND subject = ? AND template = ?",
                (tenant, subject, template),
            ).fetchone()
            conn.execute(
                "INSERT INTO templates (tenant, subject, template, model, embedding, stored_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (tenant, subject, template) DO UPDATE SET"
                " model = excluded.model, embedding = excluded.embedding,"
                " stored_at = excluded.stored_at",
                (tenant, subject, template, model, vector, stored_at),
            )
        return existed is None, stored_at

    def get_subject(self, tenant: str, subject: str) -> dict[str, Any] | None:
        with self._transaction(immediate=False) as conn:
            templates = conn.execute(
                "SELECT template, model, embedding, stored_at FROM templates"
                " WHERE tenant = ? AND subject = ? ORDER BY stored_at, template",
                (tenant, subject),
            ).fetchall()
            events = conn.execute(
                "SELECT at, device, purpose, distance FROM events"
                " WHERE tenant = ? AND subject = ? ORDER BY at, id",
                (tenant, subject),
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

    def delete_subjects(self, tenant: str, subjects: Iterable[str], erased_at: int) -> dict:
        """Erase every template and event of each subject, in one transaction, and tombstone
        them at ``erased_at`` (the erasing request's time). Returns {subject: items erased}."""
        counts: dict[str, int] = {}
        with self._transaction() as conn:
            for subject in dict.fromkeys(subjects):
                erased = conn.execute(
                    "DELETE FROM templates WHERE tenant = ? AND subject = ?", (tenant, subject)
                ).rowcount
                erased += conn.execute(
                    "DELETE FROM events WHERE tenant = ? AND subject = ?", (tenant, subject)
                ).rowcount
                conn.execute(
                    "INSERT INTO tombstones (tenant, subject, erased_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (tenant, subject) DO UPDATE SET"
                    " erased_at = max(erased_at, excluded.erased_at)",
                    (tenant, subject, int(erased_at)),
                )
                counts[subject] = erased
        if any(counts.values()):
            self._purge_wal()
        return counts

    def delete_subject(self, tenant: str, subject: str, erased_at: int) -> int:
        """Erase one subject (see :meth:`delete_subjects`)."""
        return self.delete_subjects(tenant, [subject], erased_at)[subject]

    def _purge_wal(self) -> None:
        # Old page images stay in the WAL until it is checkpointed and reset; try to do that
        # now, without waiting long for concurrent readers (the next writer will reuse it).
        try:
            conn = self._conn()
            conn.execute("PRAGMA busy_timeout=200")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error:
            log.debug("WAL checkpoint after erasure skipped", exc_info=True)

    def list_subjects(
        self, tenant: str, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        rows = (
            self._conn()
            .execute(
                "SELECT subject FROM ("
                " SELECT subject FROM templates WHERE tenant = ?1"
                " UNION SELECT subject FROM events WHERE tenant = ?1"
                ") WHERE subject > ?2 ORDER BY subject LIMIT ?3",
                (tenant, after or "", limit + 1),
            )
            .fetchall()
        )
        subjects = [row[0] for row in rows[:limit]]
        next_cursor = subjects[-1] if len(rows) > limit else None
        return subjects, next_cursor

    def add_event(
        self, tenant: str, subject: str, device: str, purpose: str, distance: float, at: str
    ) -> int:
        """Record an event; :class:`SubjectErased` if it happened before the subject's erasure."""
        happened = datetime.fromisoformat(at).timestamp()
        with self._transaction() as conn:
            erased_at = self._erased_at(conn, tenant, subject)
            if erased_at is not None and happened < erased_at + TOMBSTONE_MARGIN_SECONDS:
                raise SubjectErased(subject)
            cursor = conn.execute(
                "INSERT INTO events (tenant, subject, device, purpose, distance, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, subject, device, purpose, distance, at),
            )
            return int(cursor.lastrowid or 0)  # set by every INSERT
