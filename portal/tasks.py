"""The portal's tasks, and the one task beat runs every retention job through.

Celery's autodiscovery looks for `<app>.tasks`: the export tasks live with the exports and are
registered from here. Every retention job, biometric or the portal's own, runs through
`retention_job_task`, so each scheduled run is recorded (RetentionRun + audit) like a
`manage.py enforce_retention` run.
"""

from celery import shared_task

from .exports.tasks import export_build_task
from .retention import retention_run

__all__ = ["export_build_task", "retention_job_task"]


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=2400)
def retention_job_task(job: str) -> None:
    """One retention job by name (see portal.retention.JOBS); scheduled in admin."""
    retention_run(job)
