"""Celery tasks of the portal: ids in, a service call, nothing else; and the one task beat runs
every retention job through.

Celery's autodiscovery looks for `<app>.tasks`: the export tasks live with the exports and are
registered from here. Every retention job, biometric or the portal's own, runs through
`retention_job_task`, so each scheduled run is recorded (RetentionRun + audit) like a
`manage.py enforce_retention` run.
"""

from celery import shared_task

from .account import (
    CONFIRM_TASK,
    NOTICE_TASK,
    email_change_confirm_send,
    email_change_notice_send,
)
from .auth import SEND_TASK, magic_link_send
from .exports.tasks import export_build_task
from .retention import retention_run

__all__ = ["export_build_task", "retention_job_task"]

# Each reads its row and skips work already done, so a redelivered task (acks_late is the
# default here) does nothing again, save a second mail if the worker died right after sending.


@shared_task(name=SEND_TASK, soft_time_limit=30, time_limit=60)
def magic_link_send_task(attempt_id: int) -> None:
    magic_link_send(attempt_id=attempt_id)


@shared_task(name=CONFIRM_TASK, soft_time_limit=30, time_limit=60)
def email_change_confirm_task(change_id: int) -> None:
    email_change_confirm_send(change_id=change_id)


@shared_task(name=NOTICE_TASK, soft_time_limit=30, time_limit=60)
def email_change_notice_task(change_id: int) -> None:
    email_change_notice_send(change_id=change_id)


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=2400)
def retention_job_task(job: str) -> None:
    """One retention job by name (see portal.retention.JOBS); scheduled in admin."""
    retention_run(job)
