from celery import shared_task

from . import BUILD_TASK, export_build


@shared_task(name=BUILD_TASK, acks_late=True, soft_time_limit=600, time_limit=900)
def export_build_task(export_id: str) -> None:
    export_build(export_id=export_id)
