"""What erasure must show with real processes (issue "Erasure that survives everything, and
proves it"): a Celery worker and reference holders as OS processes, the watchdog called by the
wait loops as beat would.

- a holder down for a while: attempts grow exponentially, one DPO email, all verified after;
- a worker SIGKILLed mid-step: verified within 90 s (its lease runs out, the watchdog re-drives);
- a PUT replayed (or delivered late) after the erasure: refused;
- two schools on one holder: one school's reconciliation leaves the other's subjects;
- a removed holder: not verified, until a DPO confirms;
- an export: erased with its child;
- a truncated or rewritten audit trail: `manage.py verify_audit` (its own process) reports it.

The outage lasts GUARDIAN_TEST_HOLDER_DOWN seconds (default 60; the issue's drill is 150):
retries start at 1 s and double up to a fifth of it, escalation after a third of it.
"""

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from django.core import mail

from biometrics.erasure import erasure_step_confirm, erasure_watchdog
from biometrics.holders.protocol import signed_headers
from biometrics.models import ErasureRequest, ErasureStep, Holder, TemplateCopy
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.retention import retention_run
from biometrics.services import holder_delete
from consent.actors import Actor
from consent.models import AuditChainHead, AuditEvent
from portal.models import Export

from ..factories import TEST_ACTOR, SchoolFactory, StudentFactory, grant, guardian, link
from ..factories import purpose_with_notice as make_purpose
from ..processes import ROOT, process_env, wait_for
from .conftest import register_holder, watchdog_until
from .test_erasure_faults import enrol_everywhere, withdraw

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DOWN = float(os.environ.get("GUARDIAN_TEST_HOLDER_DOWN", "60"))
CAP = max(4.0, DOWN / 5)
ATTENTION_AFTER = DOWN / 3

WORKER_ENV = {
    "ERASURE_RETRY_BACKOFF": "1",
    "ERASURE_RETRY_BACKOFF_MAX": str(CAP),
    "ERASURE_ATTENTION_AFTER": str(ATTENTION_AFTER),
    "HOLDER_TIMEOUT_SECONDS": "5",
}


@pytest.fixture
def worker_mail(stack):
    """The DPO emails the worker sent (its console backend writes them to its log)."""
    start = len(stack.worker.log())
    return lambda: stack.worker.log()[start:].count("erasure step(s) need attention")


def verified(*erasure_ids):
    return ErasureRequest.objects.filter(pk__in=erasure_ids, status="verified").count() == len(
        erasure_ids
    )


def test_a_holder_down_backs_off_exponentially_emails_the_dpo_once_then_verifies(
    stack, school, purposes, child_a, child_b, api_a, api_b, settings, worker_mail
):
    settings.ERASURE_ATTENTION_AFTER = ATTENTION_AFTER
    proc = stack.holder("holder-a")
    register_holder(school, proc, "Gate controller")
    enrol_everywhere(child_a, 1)
    enrol_everywhere(child_b, 1)
    log_mark = len(stack.worker.log())
    proc.stop()
    erasures = [withdraw(api_a, child_a), withdraw(api_b, child_b)]
    steps = [ErasureStep.objects.get(request_id=e, kind="http") for e in erasures]

    started = time.monotonic()
    seen = []  # (seconds since the outage began, attempts) whenever they change
    while time.monotonic() - started < DOWN:
        attempts = ErasureStep.objects.get(pk=steps[0].pk).attempts
        if not seen or seen[-1][1] != attempts:
            seen.append((round(time.monotonic() - started, 1), attempts))
        erasure_watchdog()
        time.sleep(0.5)
    back = stack.holder("holder-a")
    back_at = time.monotonic()
    watchdog_until(lambda: verified(*erasures), CAP * 2 + 30, "both erasures verified")
    recovered = time.monotonic() - back_at

    attempts = ErasureStep.objects.get(pk=steps[0].pk).attempts
    deliveries = len(
        re.findall(r"erasure_step_task\[[^\]]+\] received", stack.worker.log()[log_mark:])
    )
    tries = [(t, n) for t, n in seen if n >= 1]  # from the first try on
    gaps = [b[0] - a[0] for a, b in zip(tries, tries[1:], strict=False)]
    print(
        f"\nholder down {DOWN:.0f}s (backoff 1 s doubling up to {CAP:.0f} s): attempts "
        f"{attempts}, changes at {seen}, gaps {[round(g, 1) for g in gaps]}; "
        f"{deliveries} task deliveries; verified {recovered:.1f}s after the holder returned"
    )
    # Exponential, then capped: the review saw 164 attempts in 140 s with the old retries.
    assert 4 <= attempts <= 2 + math.log2(CAP) + DOWN / (CAP / 2), (attempts, seen)
    for n, gap in enumerate(gaps, start=1):  # the n-th retry waits 0.5-1 × min(cap, 2^(n-1))
        full = min(CAP, 2 ** (n - 1))
        assert full / 2 - 0.6 <= gap <= full + 2.5, (n, gaps)
    assert deliveries <= 3 * attempts + 10  # no storm of tasks either (the review saw 373)
    # One DPO email for the outage (both children's steps escalated together).
    assert worker_mail() + len([m for m in mail.outbox if "need attention" in m.subject]) == 1
    assert AuditEvent.objects.filter(action="erasure.needs_attention").count() == 2
    for erasure_id in erasures:
        erasure = ErasureRequest.objects.get(pk=erasure_id)
        assert receipt_verify(signed_receipt(erasure))
        assert signed_receipt(erasure)["proof_at_erasure"]["holders"][0]["answered"] == 404
    for child in (child_a, child_b):
        assert back.info["client"].get_subject(str(child.subject_id)) is None


def test_a_worker_killed_mid_step_is_verified_within_90_seconds(
    stack, school, child_a, api_a, settings
):
    slow = stack.holder("holder-slow", delay_ms=1500)
    register_holder(school, slow, "Slow vendor")
    enrol_everywhere(child_a, 1)
    erasure_id = withdraw(api_a, child_a)
    step = ErasureStep.objects.get(request_id=erasure_id, kind="http")
    wait_for(
        lambda: ErasureStep.objects.get(pk=step.pk).status == "running",
        timeout=60,
        what="the holder step to be claimed",
    )
    time.sleep(0.3)  # the worker is waiting on the holder: mid-step
    killed_at = time.monotonic()
    stack.worker.kill()  # SIGKILL, the whole process group: no warm shutdown, no ack
    assert ErasureStep.objects.get(pk=step.pk).status == "running"
    stack.start_worker()
    watchdog_until(lambda: verified(erasure_id), 90, "the erasure verified after the kill")
    took = time.monotonic() - killed_at
    print(f"\nworker SIGKILLed mid-step: verified {took:.1f}s later")
    assert took <= 90
    assert slow.info["client"].get_subject(str(child_a.subject_id)) is None
    slow.stop()


def test_a_put_replayed_after_the_erasure_is_refused(stack, school, child_a, api_a):
    proc = stack.holder("holder-a")
    register_holder(school, proc, "Gate controller")
    enrol_everywhere(child_a, 1)
    subject = str(child_a.subject_id)
    path = f"/subjects/{subject}/templates/{uuid.uuid4()}"
    body = json.dumps({"embedding": [0.25] * 128, "model": "m"}).encode()

    def send(headers):
        request = urllib.request.Request(
            proc.info["url"] + path, data=body, method="PUT", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    captured = signed_headers(proc.info["secret"], "PUT", path, body)  # as on the wire
    assert send(captured)[0] == 201
    withheld = signed_headers(proc.info["secret"], "PUT", path, body)  # never delivered...
    time.sleep(1.1)
    erasure_id = withdraw(api_a, child_a)
    watchdog_until(lambda: verified(erasure_id), 60, "the erasure verified")

    status, reply = send(captured)
    assert (status, reply["error"]) == (401, "replayed_request")
    status, reply = send(withheld)  # ...until after the erasure
    assert (status, reply["error"]) == (410, "subject_erased")
    assert proc.info["client"].get_subject(subject) is None


def test_two_schools_on_one_holder_reconcile_without_touching_each_other(
    stack, school, purposes, child_a, tmp_path
):
    shared = stack.holder(
        "holder-shared", tenants={"school-a": "key-of-school-a", "school-b": "key-of-school-b"}
    )
    school_b = SchoolFactory(slug="school-b", name="School B")
    purpose_b = make_purpose(school_b)
    parent_b = guardian("parent.b2@example.com")
    child_b = StudentFactory(school=school_b, name="Child B")
    link(parent_b, child_b)
    grant(child_b, purpose_b, parent_b)
    url = shared.info["url"]
    Holder.objects.create(school=school, name="Vendor", base_url=url, secret="key-of-school-a")
    Holder.objects.create(school=school_b, name="Vendor", base_url=url, secret="key-of-school-b")
    enrol_everywhere(child_a, 1)
    enrol_everywhere(child_b, 1)
    on_a, on_b = shared.info["clients"]["school-a"], shared.info["clients"]["school-b"]
    stray = str(uuid.uuid4())
    on_b.put_template(stray, str(uuid.uuid4()), [0.1] * 128, "m")

    run = retention_run("reconcile")

    assert on_a.get_subject(str(child_a.subject_id)) is not None
    assert on_b.get_subject(str(child_b.subject_id)) is not None
    assert on_b.get_subject(stray) is None
    assert list(on_a.iter_subjects()) == [str(child_a.subject_id)]
    assert run.counts["subjects_checked"] == 3
    shared.stop()


def test_a_removed_holder_is_not_verified_until_a_dpo_confirms(
    stack, school, child_a, api_a, admin_user
):
    a, b = stack.holder("holder-a"), stack.holder("holder-b")
    register_holder(school, a, "Gate controller")
    gone = register_holder(school, b, "Canteen till")
    enrol_everywhere(child_a, 2)
    b.stop()
    erasure_id = withdraw(api_a, child_a)
    step = ErasureStep.objects.get(request_id=erasure_id, holder=gone)
    wait_for(lambda: ErasureStep.objects.get(pk=step.pk).attempts >= 1, timeout=60, what="a try")
    holder_delete(holder=gone, actor=TEST_ACTOR)  # removed while it holds the copy

    watchdog_until(
        lambda: ErasureStep.objects.get(pk=step.pk).status == "needs_attention",
        30,
        "the removed holder's step to need attention",
    )
    for _ in range(10):  # everything else is done; it still must not be called verified
        erasure_watchdog()
        time.sleep(0.5)
    erasure = ErasureRequest.objects.get(pk=erasure_id)
    assert erasure.status == "needs_attention"
    assert ErasureStep.objects.filter(request_id=erasure_id).exclude(status="verified").count() == 2

    erasure_step_confirm(
        step=ErasureStep.objects.get(pk=step.pk),
        evidence="The till was wiped by the vendor (ticket 481)",
        actor=Actor.staff(admin_user),
    )
    watchdog_until(lambda: verified(erasure_id), 60, "the erasure verified after the DPO")
    receipt = signed_receipt(ErasureRequest.objects.get(pk=erasure_id))
    (till,) = [s for s in receipt["systems"] if s["system"] == "Canteen till"]
    assert till["confirmed_manually"]["evidence"] == "The till was wiped by the vendor (ticket 481)"
    assert till["verification"].startswith("the system could no longer be asked")


def test_an_export_is_erased_with_its_child(stack, school, child_a, api_a):
    proc = stack.holder("holder-a")
    register_holder(school, proc, "Gate controller")
    enrol_everywhere(child_a, 1)
    r = api_a.post(f"/api/v1/children/{child_a.pk}/exports/")
    assert r.status_code == 202, r.content
    export_id = r.json()["id"]
    export = wait_for(
        lambda: Export.objects.filter(pk=export_id, status="ready").first(),
        timeout=120,
        what="the export built by the worker",
    )
    sealed = stack.media / export.storage_name
    assert sealed.exists()

    erasure_id = withdraw(api_a, child_a)
    watchdog_until(lambda: verified(erasure_id), 60, "the erasure verified")

    assert not Export.objects.filter(pk=export_id).exists()
    assert not sealed.exists()
    assert api_a.get(f"/api/v1/exports/{export_id}/download/").status_code == 404
    receipt = signed_receipt(ErasureRequest.objects.get(pk=erasure_id))
    (downloads,) = [s for s in receipt["systems"] if s["kind"] == "exports"]
    assert downloads["items_erased"] == 1
    assert not TemplateCopy.objects.filter(template__student=child_a).exists()


def verify_audit(*args, folder):
    """`manage.py verify_audit` as its own process, on the test database."""
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit", *args],
        cwd=ROOT,
        env=process_env(AUDIT_CHECKPOINT_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_truncated_or_rewritten_audit_trail_is_reported(school, child_a, tmp_path):
    folder = tmp_path / "checkpoints"
    first = verify_audit("--checkpoint", folder=folder)
    assert first.returncode == 0, first.stderr
    assert "Checkpoint written" in first.stdout
    assert "OK" in verify_audit(folder=folder).stdout

    # Truncated: the newest events deleted and the head moved back (the chain alone holds).
    events = list(AuditEvent.objects.order_by("-pk")[:3])
    AuditEvent.objects.filter(pk__in=[e.pk for e in events[:2]])._raw_delete("default")
    AuditChainHead.objects.filter(pk=1).update(last_hash=events[2].hash, last_event_id=events[2].pk)
    truncated = verify_audit(folder=folder)
    assert truncated.returncode != 0
    assert re.search(r"truncated", truncated.stderr), truncated.stderr

    # Rewritten instead: the whole tail re-hashed after an edit.
    folder2 = tmp_path / "checkpoints2"
    assert verify_audit("--checkpoint", folder=folder2).returncode == 0
    victim = AuditEvent.objects.order_by("pk")[1]
    prev = AuditEvent.objects.order_by("pk")[0].hash
    AuditEvent.objects.filter(pk=victim.pk).update(data={"rewritten": True})
    for event in AuditEvent.objects.filter(pk__gte=victim.pk).order_by("pk"):
        event.prev_hash = prev
        prev = event.compute_hash()
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=event.prev_hash, hash=prev)
    AuditChainHead.objects.filter(pk=1).update(last_hash=prev)
    rewritten = verify_audit(folder=folder2)
    assert rewritten.returncode != 0
    assert "rewritten" in rewritten.stderr, rewritten.stderr
