"""Erasure with real processes: a Celery worker, two reference holders, and the embedded
broker or Redis. Withdrawal ends with nothing of the child left anywhere — also when the worker
is killed, Redis restarts, a holder is down or flaky, or a task arrives twice."""

import shutil
import subprocess
import time

import pytest

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify
from biometrics.models import (
    ErasureRequest,
    ErasureStep,
    FaceTemplate,
    Photo,
    RecognitionEvent,
    TemplateCopy,
)
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.services import photo_enrol
from biometrics.tasks import erasure_step_task

from ..factories import TEST_ACTOR
from ..processes import wait_for
from .conftest import register_holder, watchdog_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def enrol_everywhere(child, n_holders: int):
    photo_enrol(student=child, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    wait_for(
        lambda: TemplateCopy.objects.filter(template__student=child, status="stored").count()
        == n_holders,
        timeout=60,
        what="template copies in every holder",
    )


def withdraw(api, child):
    r = api.post(
        f"/api/v1/children/{child.pk}/consents/",
        {"purpose": "gate_access", "decision": "withdraw", "notice_version": 1},
        format="json",
    )
    assert r.status_code == 201
    assert r.json()["erasure_id"]
    return r.json()["erasure_id"]


def wait_verified(erasure_id, stack, timeout=120):
    """Wait as a parent would, the watchdog running as beat would (`watchdog_until`)."""

    def verified():
        erasure = ErasureRequest.objects.get(pk=erasure_id)
        return erasure if erasure.status == "verified" else None

    try:
        return watchdog_until(verified, timeout, "the erasure verified")
    except AssertionError:
        steps = list(ErasureStep.objects.filter(request_id=erasure_id).values())
        pytest.fail(f"erasure not verified in {timeout}s: {steps}\n{stack.worker.log()[-3000:]}")


def assert_nothing_left(child, stack, holders, erasure):
    subject = str(child.subject_id)
    assert not Photo.objects.filter(student=child).exists()
    assert not FaceTemplate.objects.filter(student=child).exists()
    assert not RecognitionEvent.objects.filter(student=child).exists()
    assert (
        not list((stack.media / "photos" / subject).glob("*"))
        if (stack.media / "photos" / subject).exists()
        else True
    )
    for proc in holders:
        assert proc.info["client"].get_subject(subject) is None
    probe = embedding_from_photo(demo_photos.grace_hopper())
    purpose = child.school.purposes.get(code="gate_access")
    assert identify(school=child.school, purpose=purpose, embedding=probe, device="x") is None
    assert receipt_verify(signed_receipt(erasure))
    for step in erasure.steps.all():
        assert step.status == "verified"
        assert step.verified_at is not None


@pytest.fixture
def two_holders(stack, school):
    a, b = stack.holder("holder-a"), stack.holder("holder-b")
    register_holder(school, a, "Gate controller")
    register_holder(school, b, "Canteen till")
    return a, b


def test_withdrawal_is_verified_in_every_system(stack, two_holders, child_a, api_a):
    enrol_everywhere(child_a, 2)
    started = time.monotonic()
    erasure_id = withdraw(api_a, child_a)
    erasure = wait_verified(erasure_id, stack)
    assert time.monotonic() - started < 60
    assert erasure.steps.count() == 7  # database, media, cache, downloads, 2 holders, key
    assert_nothing_left(child_a, stack, two_holders, erasure)
    held = api_a.get(f"/api/v1/children/{child_a.pk}/").json()
    assert held["photos"] == [] and held["templates"] == []
    assert held["erasures"][0]["status"] == "verified"


def test_worker_killed_mid_erasure_then_restarted(stack, two_holders, child_a, api_a):
    enrol_everywhere(child_a, 2)
    holder_b = two_holders[1]
    holder_b.stop()  # keeps the erasure in progress while the worker dies
    erasure_id = withdraw(api_a, child_a)
    wait_for(
        lambda: ErasureStep.objects.filter(request_id=erasure_id, status="verified").count() >= 3,
        timeout=60,
        what="the first steps to be verified",
    )
    stack.worker.kill()  # SIGKILL: no warm shutdown, unacked work in flight
    stack.holder("holder-b")  # the holder comes back
    stack.start_worker()
    erasure = wait_verified(erasure_id, stack)
    assert_nothing_left(child_a, stack, [two_holders[0], stack.holder("holder-b")], erasure)


def test_holder_down_when_erasure_starts_and_back_later(stack, two_holders, child_a, api_a):
    enrol_everywhere(child_a, 2)
    two_holders[0].stop()
    erasure_id = withdraw(api_a, child_a)
    step = ErasureStep.objects.get(request_id=erasure_id, system="Gate controller")
    wait_for(
        lambda: ErasureStep.objects.get(pk=step.pk).attempts >= 2,
        timeout=60,
        what="retries against the holder that is down",
    )
    assert ErasureStep.objects.get(pk=step.pk).status != "verified"
    back = stack.holder("holder-a")
    erasure = wait_verified(erasure_id, stack)
    assert erasure.steps.get(pk=step.pk).attempts >= 3
    assert_nothing_left(child_a, stack, [back, two_holders[1]], erasure)


def test_holder_answering_500_then_200(stack, school, child_a, api_a):
    flaky = stack.holder("holder-flaky", fail_first=0)
    register_holder(school, flaky, "Flaky vendor")
    enrol_everywhere(child_a, 1)
    flaky.stop()
    flaky = stack.holder("holder-flaky", fail_first=2)  # restarted: next 2 requests → 500
    erasure_id = withdraw(api_a, child_a)
    erasure = wait_verified(erasure_id, stack)
    step = erasure.steps.get(system="Flaky vendor")
    assert step.attempts >= 2
    assert_nothing_left(child_a, stack, [flaky], erasure)
    flaky.stop()


def test_the_same_task_delivered_twice(stack, two_holders, child_a, api_a):
    enrol_everywhere(child_a, 2)
    erasure_id = withdraw(api_a, child_a)
    for step in ErasureStep.objects.filter(request_id=erasure_id):
        erasure_step_task.delay(step.pk)  # a second delivery of every step
    erasure = wait_verified(erasure_id, stack)
    assert_nothing_left(child_a, stack, two_holders, erasure)
    database = erasure.steps.get(kind="database")
    assert database.items_erased == 2  # photo + template: counted once, not twice
    assert signed_receipt(erasure)["systems"][0]["items_erased"] == 2


@pytest.mark.needs_redis
def test_redis_restarted_during_an_erasure(stack, two_holders, child_a, api_a):
    enrol_everywhere(child_a, 2)
    two_holders[0].stop()  # keep the erasure open across the restart
    erasure_id = withdraw(api_a, child_a)
    redis_cli = shutil.which("redis-cli")
    subprocess.run([redis_cli, "-h", "127.0.0.1", "shutdown", "nosave"], check=False)
    time.sleep(1)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    wait_for(
        lambda: subprocess.run([redis_cli, "ping"], capture_output=True).returncode == 0,
        timeout=20,
        what="Redis to come back",
    )
    stack.holder("holder-a")
    erasure = wait_verified(erasure_id, stack, timeout=180)
    assert_nothing_left(child_a, stack, [stack.holder("holder-a"), two_holders[1]], erasure)
