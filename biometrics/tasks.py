"""Celery tasks: ids in, a service call, nothing else. No images or embeddings on the broker."""

from __future__ import annotations

from celery import shared_task

from .holder_protocol import HolderUnavailable
from .services import photo_process, template_copy_push


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def photo_process_task(photo_id: str) -> None:
    photo_process(photo_id=photo_id)


@shared_task(
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
