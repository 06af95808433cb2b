"""Every retention job, the biometric ones and the portal's own (expired downloads), under one
name each: `manage.py enforce_retention` runs them all, recorded the same way."""

from __future__ import annotations

from datetime import datetime

from biometrics import retention
from biometrics.models import RetentionRun

from .exports import job_exports

JOBS: dict[str, retention.Job] = {**retention.JOBS, "exports": job_exports}


def retention_run(
    job: str, *, as_of: datetime | None = None, dry_run: bool = False
) -> RetentionRun:
    """Run one job of any app and record what it did (RetentionRun + audit)."""
    return retention.retention_run(job, as_of=as_of, dry_run=dry_run, jobs=JOBS)
