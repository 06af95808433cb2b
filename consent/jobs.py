"""Queueing background work: a task's name and ids, after the transaction commits.

Every app queues its Celery tasks through `job_enqueue`, by the task's registered name. The
code that queues work therefore never imports the module that defines the task (which imports
that code to run it), so imports run one way: `tasks` modules sit on top of their app.

Only ids travel: an argument that is not an int, a str or a UUID is refused here, so no image,
embedding or name can reach the broker through this door. The message is sent after the
surrounding transaction commits (at once outside one), so a worker never looks for a row that
is not there yet, and a rolled-back change queues nothing.
"""

from __future__ import annotations

import uuid

from celery import current_app
from django.db import transaction

Id = int | str | uuid.UUID


def job_enqueue(task: str, *ids: Id, countdown: float | None = None) -> None:
    """Queue the task named `task` with these ids once the current transaction commits."""
    args = [_plain_id(value) for value in ids]
    options = {} if countdown is None else {"countdown": countdown}
    transaction.on_commit(lambda: current_app.send_task(task, args=args, **options))


def _plain_id(value: object) -> int | str:
    # bool is an int subclass, and a bytes/array/list is never an id: refuse them all.
    if isinstance(value, bool) or not isinstance(value, int | str | uuid.UUID):
        raise TypeError(f"a job takes ids only, not {type(value).__name__}")
    return str(value) if isinstance(value, uuid.UUID) else value
