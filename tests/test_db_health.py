"""A kept PostgreSQL connection is checked at the start of each request without a round trip
(portal/postgresql/base.py), and one the server has ended is replaced, not used."""

from __future__ import annotations

import select

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connections"),
]


def _other():
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)


def _last_statement(pid: int) -> str:
    with _other() as other:
        row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row[0]


def _request_begins() -> None:
    """What Django does when a request starts (request_started → close_old_connections); the
    check itself runs when the request first uses the connection."""
    close_old_connections()
    connection.close_if_health_check_failed()


def test_a_healthy_kept_connection_is_checked_without_asking_the_server():
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last request'")
    kept = connection.connection
    pid = kept.info.backend_pid

    _request_begins()

    assert connection.connection is kept  # kept, not reopened
    assert connection.health_check_done
    # Django's own check would have sent SELECT 1: the server saw nothing since.
    assert _last_statement(pid) == "SELECT 'the last request'"


def _server_ends_the_session() -> int:
    """PostgreSQL ends this connection's session (as a restart or an administrator would); its
    goodbye (a FATAL message, then the end of the stream) reaches the socket. Its pid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pid = connection.connection.info.backend_pid
    with _other() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    readable, _, _ = select.select([connection.connection.fileno()], [], [], 10)
    assert readable
    return pid


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it():
    pid = _server_ends_the_session()

    _request_begins()

    assert _backend_pid() != pid  # no OperationalError: a new connection


def test_a_broken_connection_is_not_kept():
    pid = _server_ends_the_session()
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # this request learns it the hard way
    assert connection.is_usable() is False

    _request_begins()  # the next request does not

    assert _backend_pid() != pid
