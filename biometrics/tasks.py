"""Celery tasks: ids in, a service call, nothing else. No images or embeddings on the broker.

This module sits on top of the app: it imports the services it runs, and nothing imports it.
Services queue these tasks by name (consent.jobs.job_enqueue), after their transaction commits.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from .erasure import STEP_TASK, StepFailed, erasure_step_run, erasure_watchdog
from .holders.protocol import HolderRejected, HolderUnavailable
from .services import COPY_TASK, PHOTO_TASK, photo_process, template_copy_push


@shared_task(name=PHOTO_TASK, acks_late=True, soft_time_limit=60, time_limit=90)
def photo_process_task(photo_id: str) -> None:
    photo_process(photo_id=photo_id)


@shared_task(
    name=COPY_TASK,
    acks_late=True,
    autoretry_for=(HolderUnavailable,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=50,
    soft_time_limit=30,
    time_limit=60,
)
def template_copy_push_task(copy_id: int) -> None:
    template_copy_push(copy_id=copy_id)


@shared_task(
    name=STEP_TASK,
    acks_late=True,
    autoretry_for=(HolderUnavailable, HolderRejected, StepFailed, OSError, OperationalError),
    retry_backoff=settings.ERASURE_RETRY_BACKOFF,
    retry_backoff_max=settings.ERASURE_RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=None,  # the step's row counts attempts and escalates; never give up silently
    soft_time_limit=120,
    time_limit=180,
)
def erasure_step_task(step_id: int) -> None:
    erasure_step_run(step_id=step_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def erasure_watchdog_task() -> None:
    erasure_watchdog()
