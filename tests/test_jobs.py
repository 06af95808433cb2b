"""Queueing work by name (consent.jobs): ids only, after commit, to a task that exists."""

import importlib
import uuid

import numpy as np
import pytest
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from biometrics.erasure import COPY_TASK, STEP_TASK
from biometrics.services import PHOTO_TASK
from consent.jobs import job_enqueue
from consent.roster import IMPORT_TASK
from portal import retention
from portal.celery import app
from portal.exports import BUILD_TASK


@pytest.mark.parametrize(
    "value", [b"\xff\xd8jpeg", [0.1] * 128, np.zeros(128), {"embedding": [0.1]}, True, 1.5]
)
def test_a_job_takes_ids_only(value, sent_jobs):
    with pytest.raises(TypeError, match="ids only"):
        job_enqueue(STEP_TASK, value)
    assert sent_jobs == []


def test_a_job_is_sent_when_its_transaction_commits_and_never_if_it_rolls_back(
    db, sent_jobs, django_capture_on_commit_callbacks
):
    photo = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue(PHOTO_TASK, photo)
        assert sent_jobs == []  # not before the commit
    assert sent_jobs == [(PHOTO_TASK, [str(photo)])]

    def queue_then_fail():
        with transaction.atomic():
            job_enqueue(STEP_TASK, 7)
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        queue_then_fail()
    assert sent_jobs == [(PHOTO_TASK, [str(photo)])]


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        (PHOTO_TASK, "faces"),
        (COPY_TASK, "default"),
        (STEP_TASK, "erasure"),
        (IMPORT_TASK, "default"),
        (BUILD_TASK, "default"),
    ],
)
def test_every_queued_name_is_a_registered_task_on_its_queue(name, queue):
    app.loader.import_default_modules()  # what a worker does at start
    assert name in app.tasks
    routed = app.amqp.router.route({}, name)
    assert routed["queue"].name == queue


SCHEDULE_MIGRATIONS = [
    "biometrics.migrations.0002_schedules",
    "portal.migrations.0002_schedules",
    "portal.migrations.0004_roster_watchdog_schedule",
    "consent.migrations.0008_legacy_notifications_notice_watchdog",
    "consent.migrations.0010_audit_checkpoint_schedule",
]


def test_every_schedule_the_migrations_install_runs_a_registered_task_and_job(db):
    """Beat finds its task by name: a renamed task would silently never run again."""
    app.loader.import_default_modules()
    repoint = importlib.import_module("portal.migrations.0006_retention_schedules_one_task")
    schedules = []
    for module in SCHEDULE_MIGRATIONS:
        for name, task, args, _seconds in importlib.import_module(module).SCHEDULES:
            task, new_args = repoint.REPOINT.get(task, (task, None))
            schedules.append((name, task, new_args or args))
    assert len(schedules) == 10
    for name, task, args in schedules:
        assert task in app.tasks, name
        if task == repoint.TASK:
            assert args[0] in retention.JOBS, name
    # And the migrations installed them (unless a flushing test ran before this one).
    installed = set(PeriodicTask.objects.values_list("name", flat=True))
    assert installed in (set(), {name for name, *_ in schedules})
