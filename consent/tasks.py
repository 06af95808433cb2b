"""Celery tasks of the consent app: ids in, a service call, nothing else."""

from __future__ import annotations

from celery import shared_task

from .audit_checkpoints import audit_checkpoint_write
from .roster import IMPORT_TASK, roster_job_run, roster_job_watchdog
from .services import (
    NOTICE_TASK,
    NOTICE_WATCHDOG_TASK,
    notice_deliveries_send,
    notice_watchdog,
)


@shared_task(name=IMPORT_TASK, acks_late=True, soft_time_limit=1800, time_limit=2400)
def roster_import_task(job_id: int) -> None:
    # Resumable and idempotent: a second delivery takes the job over from its last chunk.
    roster_job_run(job_id=job_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def roster_import_watchdog_task() -> None:
    roster_job_watchdog()


@shared_task(name=NOTICE_TASK, acks_late=True, soft_time_limit=600, time_limit=660)
def notice_send_task(*delivery_ids: int) -> None:
    # Each delivery is claimed by compare-and-set: a second delivery of the message sends
    # nothing twice; failures are retried by the service (rows, not broker state).
    notice_deliveries_send(delivery_ids=delivery_ids)


@shared_task(name=NOTICE_WATCHDOG_TASK, acks_late=True, soft_time_limit=60, time_limit=90)
def notice_watchdog_task() -> None:
    notice_watchdog()


@shared_task(acks_late=True, soft_time_limit=300, time_limit=600)
def audit_checkpoint_task() -> None:
    """Daily: a signed checkpoint of the audit trail, outside the database, to the DPOs."""
    audit_checkpoint_write()
