"""Leases: a worker holds the steps it claimed until `lease_until`, and renews that while it
works (a heartbeat), so a step whose worker died is taken back within ERASURE_LEASE_SECONDS
(by the watchdog, or by any claim), not after minutes."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from ..models import ErasureStatus, ErasureStep

log = logging.getLogger("biometrics.erasure")


def lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.ERASURE_LEASE_SECONDS)


@contextlib.contextmanager
def heartbeat(step_ids: list[int]) -> Iterator[None]:
    """Renew the lease of these (running) steps every third of a lease while the block runs.

    The renewal runs on a thread with its own database connection. Inside a transaction (a
    test's, or a caller's) nothing is renewed: its claim is not visible to another connection.
    """
    if not step_ids or connection.in_atomic_block:
        yield
        return
    stop = threading.Event()
    period = settings.ERASURE_LEASE_SECONDS / 3

    def renew() -> None:
        try:
            while not stop.wait(period):
                try:
                    ErasureStep.objects.filter(
                        pk__in=step_ids, status=ErasureStatus.RUNNING
                    ).update(lease_until=lease_end(timezone.now()))
                except DatabaseError:  # a busy database: the next beat tries again
                    log.warning("could not renew the lease of %d erasure steps", len(step_ids))
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=renew, name="erasure-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
