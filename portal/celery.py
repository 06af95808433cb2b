import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("guardian")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _load_face_models(**kwargs) -> None:
    """Load face_recognition's models once per worker process, before the first task."""
    from biometrics.faces import warm_up

    warm_up()
