"""The reference holder's store: one SQLite file (WAL mode), standard library only.

Templates and recognition events are kept per subject; erasing a subject removes both in one
transaction and then tries to purge the old page images from the WAL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

__all__ = ["HolderStore", "now_iso"]

log = logging.getLogger(__name__)

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


def now_iso() -> str:
    """The holder's timestamp format (UTC, microseconds), for ``stored_at`` and event times."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


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
        stored_at = now_iso()
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
            return int(cursor.lastrowid or 0)  # set by every INSERT
