"""Django's PostgreSQL backend, but a kept connection is checked without a round trip.

With CONN_HEALTH_CHECKS, Django checks a kept connection before a request first uses it, by
sending `SELECT 1` and waiting for the answer: one round trip more for every request (a gate's
identification makes four others), and with PostgreSQL on another host a network round trip in
every request's wall time. Here the check asks the connection's own socket instead, as some
drivers' pools do (Go's MySQL driver reads it before reusing a connection):

- psycopg already knows a connection that is closed, broken (an earlier call failed on the
  socket) or in an unknown state;
- a connection at rest has nothing to read: every answer to what we sent has been read. If the
  socket is readable, the server spoke unasked, and between requests that is the server ending
  the session (a restart, an administrator, `idle_session_timeout`: a FATAL message, then the
  end of the stream). Such a connection is closed and the request opens a new one.

A peer gone without a word (a cable pulled) is not seen, by this check or (until TCP gives up)
by `SELECT 1`'s wait either. After a request whose queries raised, Django asks again before
keeping the connection; the same rules answer.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper
from psycopg.pq import TransactionStatus


class DatabaseWrapper(PostgreSQLDatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status == TransactionStatus.UNKNOWN:
            return False
        poller = select.poll()  # not select(): no limit on the descriptor's number
        try:
            poller.register(connection.fileno(), select.POLLIN)
            events = poller.poll(0)
        except (OSError, ValueError):
            return False
        return not events  # readable, hung up or in error: not to be used
