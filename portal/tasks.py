# Celery's autodiscovery looks for <app>.tasks; the export tasks live with the exports.
from .exports.tasks import export_build_task, export_expire_task

__all__ = ["export_build_task", "export_expire_task"]
