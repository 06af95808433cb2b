import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("guardian")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _load_face_models(**kwargs) -> None:
    """In `faces` workers (GUARDIAN_LOAD_FACE_MODELS=1), load face_recognition's models
    (~116 MiB) once per process, before the first task. Other workers never pay for them."""
    if os.environ.get("GUARDIAN_LOAD_FACE_MODELS") == "1":
        from biometrics.faces import warm_up  # noqa: PLC0415 - faces workers only

        warm_up()
