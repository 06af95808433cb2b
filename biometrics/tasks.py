"""Celery tasks: ids in, a service call, nothing else. No images or embeddings on the broker.

This module sits on top of the app: it imports the services it runs, and nothing imports it.
Services queue these tasks by name (consent.jobs.job_enqueue), after their transaction commits.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from .erasure import COPY_TASK, STEP_TASK, erasure_step_run, erasure_watchdog
from .services import PHOTO_TASK, photo_process, template_copy_push


@shared_task(name=PHOTO_TASK, acks_late=True, soft_time_limit=60, time_limit=90)
def photo_process_task(photo_id: str) -> None:
    photo_process(photo_id=photo_id)


@shared_task(name=COPY_TASK, acks_late=True, soft_time_limit=30, time_limit=60)
def template_copy_push_task(copy_id: int) -> None:
    # A failed copy is marked on its row and queued again for its next try (backing off).
    template_copy_push(copy_id=copy_id)


@shared_task(
    name=STEP_TASK,
    acks_late=True,
    # A step's failures are recorded on its row, with its next try; only a database that is
    # busy right now fails the task itself (retried briefly; the watchdog is the net).
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=120,
    time_limit=180,
)
def erasure_step_task(step_id: int) -> None:
    erasure_step_run(step_id=step_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def erasure_watchdog_task() -> None:
    erasure_watchdog()
