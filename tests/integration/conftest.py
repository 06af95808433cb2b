"""Real processes for every test in this folder: a Celery worker and reference holders.

The worker's retry schedule is shortened (the retries still happen; they are only closer
together). The watchdog, which beat runs every minute in production, is called by the tests'
wait loops, with a short "stuck" threshold.
"""

import time

import pytest

from biometrics.erasure import erasure_watchdog
from biometrics.models import Holder

from ..processes import holder_wait, purge_filesystem_broker, start_holder, start_worker

WORKER_ENV = {
    "ERASURE_RETRY_BACKOFF": "1",
    "ERASURE_RETRY_BACKOFF_MAX": "2",
    "ERASURE_ATTENTION_AFTER": "30",
    "HOLDER_TIMEOUT_SECONDS": "2",
}

pytestmark = pytest.mark.integration


def watchdog_until(predicate, timeout, what):
    """Wait as a parent would; the watchdog runs as beat would (here, every second). The
    predicate is looked at more often than that, so the test ends when the wait does."""
    deadline = time.monotonic() + timeout
    next_watchdog = time.monotonic()
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= next_watchdog:
            erasure_watchdog()
            next_watchdog = time.monotonic() + 1
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Stack:
    def __init__(self, logs, media, worker_env=None):
        self.logs = logs
        self.media = media
        self.holders = {}
        self.worker = None
        self._workers = 0
        self.worker_env = {**WORKER_ENV, **(worker_env or {})}

    def start_worker(self):
        self._workers += 1
        self.worker = start_worker(
            self.logs, name=f"worker{self._workers}", MEDIA_ROOT=str(self.media), **self.worker_env
        )
        return self.worker

    def holder(self, name, **kwargs):
        if name not in self.holders or self.holders[name].popen.poll() is not None:
            previous = self.holders.get(name)
            if previous is not None:  # restart on the same port, with the same store
                kwargs.setdefault("port", previous.info["port"])
                kwargs.setdefault("db_path", previous.info["db"])
                kwargs.setdefault("secret", previous.info["secret"])
            self.holders[name] = start_holder(self.logs, name=name, **kwargs)
        return self.holders[name]

    def stop(self):
        if self.worker:
            self.worker.stop()
        for proc in self.holders.values():
            proc.stop()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, django_db_setup, django_db_blocker):
    """A module may set WORKER_ENV of its own (added to the one above)."""
    logs = tmp_path_factory.mktemp("integration")
    media = logs / "media"
    media.mkdir()
    stack = Stack(logs, media, getattr(request.module, "WORKER_ENV", None))
    with django_db_blocker.unblock():
        purge_filesystem_broker()
        # The holders start while the worker does (each is waited for before the tests run).
        spawned = [stack.holder(name, wait=False) for name in ("holder-a", "holder-b")]
        stack.start_worker()
        for proc in spawned:
            holder_wait(proc)
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def media_dir(stack, settings):
    """The worker processes and this test process share one media folder."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(stack.media)},
        },
    }
    settings.ERASURE_STUCK_SECONDS = 2
    return stack.media


def register_holder(school, proc, name):
    return Holder.objects.create(
        school=school, name=name, base_url=proc.info["url"], secret=proc.info["secret"]
    )
