"""How an erasure behaves on the way to "verified": retries that back off on each step's own
clock, escalation from elapsed time (one DPO email), leases that let a dead worker's steps be
taken back, holders that were removed or disabled, and template copies that did not arrive."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from biometrics.erasure import (
    CannotConfirm,
    erasure_open,
    erasure_step_confirm,
    erasure_step_run,
    erasure_watchdog,
    retry_delay,
)
from biometrics.erasure.plan import COPY_TASK, STEP_TASK
from biometrics.erasure.runner import _claim
from biometrics.models import ErasureRequest, ErasureStep, Holder, TemplateCopy
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.services import holder_delete, template_copy_push
from consent.actors import Actor
from consent.models import AuditEvent
from portal.celery import app as celery_app

from .factories import TEST_ACTOR
from .test_erasure import run_all, withdraw

NOWHERE = "http://127.0.0.1:9"  # nothing listens there


@pytest.fixture
def sent(monkeypatch):
    """Every task queued: (name, first arg, countdown)."""
    queued = []
    monkeypatch.setattr(
        celery_app,
        "send_task",
        lambda name, args=None, **options: queued.append(
            (name, args[0] if args else None, options.get("countdown"))
        ),
    )
    return queued


def holder_down(holder):
    Holder.objects.filter(pk=holder.pk).update(base_url=NOWHERE)


def fail_again(step, django_capture_on_commit_callbacks):
    """Its next try is due now: run it (as the task queued for that moment would)."""
    ErasureStep.objects.filter(pk=step.pk).update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        erasure_step_run(step_id=step.pk)
    step.refresh_from_db()
    return step


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(settings):
    settings.ERASURE_RETRY_BACKOFF = 2
    settings.ERASURE_RETRY_BACKOFF_MAX = 600
    for attempts, full in [(1, 2), (2, 4), (3, 8), (6, 64), (9, 512), (10, 600), (60, 600)]:
        delays = [retry_delay(attempts) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 10  # jittered, not all at once


def test_a_failing_holder_step_backs_off_on_its_own_clock(
    held_child, purposes, parent_a, holder, sent, settings, django_capture_on_commit_callbacks
):
    settings.ERASURE_RETRY_BACKOFF = 2
    holder_down(holder)
    erasure = withdraw(held_child, purposes, parent_a)
    step = erasure.steps.get(kind="http")
    waits = []
    for attempt in range(1, 7):
        before = timezone.now()
        step = fail_again(step, django_capture_on_commit_callbacks)
        assert step.attempts == attempt
        waits.append((step.next_attempt_at - before).total_seconds())
        # Delivered again before it is due (a duplicate, another worker): nothing happens.
        with django_capture_on_commit_callbacks(execute=True):
            erasure_step_run(step_id=step.pk)
        assert ErasureStep.objects.get(pk=step.pk).attempts == attempt
    for attempt, wait in enumerate(waits, start=1):
        assert 2**attempt / 2 - 0.5 <= wait <= 2**attempt + 0.5, waits
    # One task per failure, queued for the moment the step is due (not one per batch-mate).
    retries = [(name, pk, countdown) for name, pk, countdown in sent if countdown]
    assert [pk for _, pk, _ in retries] == [step.pk] * 6
    assert all(abs(c - w) < 1 for (_, _, c), w in zip(retries, waits, strict=True))
    assert step.status == "pending" and step.escalated_at is None
    assert not [m for m in mail.outbox if "need attention" in m.subject]


def test_batch_mates_record_their_own_error_naming_no_other_child(
    held_child, child_b, holder, sent, django_capture_on_commit_callbacks
):
    holder_down(holder)
    first = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    second = erasure_open(student=child_b, trigger="staff", actor=TEST_ACTOR)
    with django_capture_on_commit_callbacks(execute=True):
        erasure_step_run(step_id=first.steps.get(kind="http").pk)
    subjects = {str(held_child.subject_id), str(child_b.subject_id)}
    for erasure in (first, second):
        step = erasure.steps.get(kind="http")
        assert step.attempts == 1  # tried once, in one batch
        assert step.last_error == "HolderUnavailable: ConnectionRefusedError"
        assert not any(s in step.last_error for s in subjects)
    assert len([1 for name, _, c in sent if name == STEP_TASK and c]) == 1  # one retry task


def test_a_step_failing_too_long_escalates_once_with_one_email_per_school(
    held_child, child_b, holder, settings, django_capture_on_commit_callbacks
):
    settings.ERASURE_ATTENTION_AFTER = 3600
    holder_down(holder)
    erasures = [
        erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
        for child in (held_child, child_b)
    ]
    steps = [e.steps.get(kind="http") for e in erasures]
    fail_again(steps[0], django_capture_on_commit_callbacks)  # both fail, in one batch
    assert erasure_watchdog() is not None
    assert not [m for m in mail.outbox if "need attention" in m.subject]  # not an hour yet

    hour_ago = timezone.now() - timedelta(seconds=3601)
    ErasureStep.objects.filter(pk__in=[s.pk for s in steps]).update(failing_since=hour_ago)
    fail_again(steps[0], django_capture_on_commit_callbacks)  # escalates both, together
    with django_capture_on_commit_callbacks(execute=True):
        erasure_watchdog()
    fail_again(steps[0], django_capture_on_commit_callbacks)  # still failing: no second email
    (email,) = [m for m in mail.outbox if "need attention" in m.subject]
    assert email.to == [held_child.school.dpo_email]
    assert "2 erasure step(s)" in email.subject
    assert str(held_child.subject_id) not in email.body
    for erasure, step in zip(erasures, steps, strict=True):
        step.refresh_from_db()
        erasure.refresh_from_db()
        assert step.status == "needs_attention" and step.escalated_at
        assert erasure.status == "needs_attention"
    assert AuditEvent.objects.filter(action="erasure.needs_attention").count() == 2


def test_a_live_lease_keeps_a_step_and_an_expired_one_gives_it_back(
    held_child, settings, sent, django_capture_on_commit_callbacks
):
    from django.db.models import Q

    erasure = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    step = erasure.steps.get(kind="database")
    (claimed,) = _claim(Q(pk=step.pk), limit=1)
    assert claimed.status == "running"
    assert claimed.lease_until > timezone.now() + timedelta(seconds=25)
    assert _claim(Q(pk=step.pk), limit=1) == []  # another worker leaves it alone
    assert erasure_step_run(step_id=step.pk).status == "running"
    # The worker died: no renewal. After the lease, the watchdog takes it back and re-drives it.
    settings.ERASURE_STUCK_SECONDS = 0
    later = claimed.lease_until + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        erasure_watchdog(now=later)
    step.refresh_from_db()
    assert step.status == "pending" and step.lease_until is None
    assert (STEP_TASK, step.pk, None) in sent
    assert AuditEvent.objects.get(action="erasure.watchdog_redrove").data["leases_expired"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_working_worker_renews_its_lease(held_child, settings):
    """The heartbeat moves the lease while the batch runs (here: a third of a 0.6 s lease)."""
    import time

    from biometrics.erasure.lease import heartbeat

    settings.ERASURE_LEASE_SECONDS = 0.6
    erasure = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    step = erasure.steps.get(kind="database")
    ErasureStep.objects.filter(pk=step.pk).update(status="running", lease_until=timezone.now())
    with heartbeat([step.pk]):
        time.sleep(1.0)
        renewed = ErasureStep.objects.get(pk=step.pk).lease_until
    assert renewed > timezone.now()


def test_a_removed_holder_is_never_verified_until_a_dpo_confirms(
    held_child, purposes, parent_a, holder, django_capture_on_commit_callbacks, admin_user
):
    holder_down(holder)
    erasure = withdraw(held_child, purposes, parent_a)
    with django_capture_on_commit_callbacks(execute=True):
        run_all(erasure)
    holder_delete(holder=Holder.objects.get(pk=holder.pk), actor=TEST_ACTOR)
    step = erasure.steps.get(kind="http")
    assert step.holder_id is None and step.status != "verified"

    with django_capture_on_commit_callbacks(execute=True):
        erasure_watchdog()
    step.refresh_from_db()
    erasure = run_all(erasure)
    assert step.status == "needs_attention" and step.escalated_at
    assert erasure.status == "needs_attention"  # not "verified, 0 items"
    assert erasure.steps.get(kind="key").status == "pending"  # the key waits too
    (email,) = [m for m in mail.outbox if "need attention" in m.subject]
    assert "removed from the configuration" in email.body

    dpo = Actor.staff(admin_user)
    with pytest.raises(CannotConfirm):
        erasure_step_confirm(step=step, evidence="   ", actor=dpo)
    with pytest.raises(CannotConfirm):  # a system that can still be asked is retried instead
        erasure_step_confirm(step=erasure.steps.get(kind="database"), evidence="x", actor=dpo)
    with django_capture_on_commit_callbacks(execute=True):
        erasure_step_confirm(step=step, evidence="Vendor certificate 2026-12-01", actor=dpo)
        erasure_step_run(step_id=erasure.steps.get(kind="key").pk)
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    receipt = signed_receipt(erasure)
    assert receipt_verify(receipt)
    (system,) = [s for s in receipt["systems"] if s["kind"] == "http"]
    assert system["verification"].startswith("the system could no longer be asked")
    assert system["confirmed_manually"]["by"] == f"staff:{admin_user.pk}"
    assert system["confirmed_manually"]["evidence"] == "Vendor certificate 2026-12-01"
    assert receipt["proof_at_erasure"]["holders"] == [
        {"system": "Gate controller", "confirmed_manually": True}
    ]
    event = AuditEvent.objects.get(action="erasure.confirmed_manually")
    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "staff",
        str(admin_user.pk),
        "",
    )


def test_a_disabled_holder_that_fails_needs_attention_at_once(
    held_child, purposes, parent_a, holder, django_capture_on_commit_callbacks
):
    Holder.objects.filter(pk=holder.pk).update(enabled=False, base_url=NOWHERE)
    erasure = withdraw(held_child, purposes, parent_a)
    with django_capture_on_commit_callbacks(execute=True):
        erasure = run_all(erasure)
    step = erasure.steps.get(kind="http")
    assert step.status == "needs_attention" and erasure.status == "needs_attention"
    assert len([m for m in mail.outbox if "need attention" in m.subject]) == 1


def test_a_disabled_holder_that_answers_is_verified(held_child, purposes, parent_a, holder):
    Holder.objects.filter(pk=holder.pk).update(enabled=False)
    erasure = run_all(withdraw(held_child, purposes, parent_a))
    assert erasure.status == "verified"
    assert signed_receipt(erasure)["proof_at_erasure"]["holders"][0]["answered"] == 404


def test_a_dpo_confirms_from_admin_and_a_school_admin_cannot(
    held_child, purposes, parent_a, holder, client, django_user_model
):
    from consent.models import StaffMembership

    from .test_admin import staff_user

    holder_down(holder)
    erasure = withdraw(held_child, purposes, parent_a)
    holder_delete(holder=Holder.objects.get(pk=holder.pk), actor=TEST_ACTOR)
    school = held_child.school
    school_admin = staff_user(django_user_model, school)
    dpo = staff_user(django_user_model, school, group="DPO", name="dpo")
    StaffMembership.objects.filter(user=dpo).update(role=StaffMembership.Role.DPO)
    changelist = "/admin/biometrics/erasurerequest/"
    action = {"action": "confirm_manually", "_selected_action": [erasure.pk]}

    client.force_login(school_admin)
    assert "confirm_manually" not in client.get(changelist).content.decode()
    client.post(changelist, {**action, "post": "yes", "evidence": "x"})
    assert erasure.steps.get(kind="http").confirmed_at is None

    client.force_login(dpo)
    form = client.post(changelist, action)
    assert form.status_code == 200 and "Evidence" in form.content.decode()
    r = client.post(changelist, {**action, "post": "yes", "evidence": "Device wiped, ticket 7"})
    assert r.status_code == 302
    step = erasure.steps.get(kind="http")
    assert step.status == "verified" and step.confirmed_by == f"staff:{dpo.pk}"
    assert step.confirmation_evidence == "Device wiped, ticket 7"


def test_a_refused_template_copy_is_retried_until_it_arrives(
    held_child, holder, holder_proc, sent, settings, django_capture_on_commit_callbacks
):
    """A copy the holder refused (a wrong secret here) is failed, not pending forever: it is
    queued for its next try, and the watchdog re-sends it if that task is lost."""
    settings.ERASURE_STUCK_SECONDS = 0
    copy = TemplateCopy.objects.get(template__student=held_child)
    TemplateCopy.objects.filter(pk=copy.pk).update(status="pending")
    Holder.objects.filter(pk=holder.pk).update(sealed_secret=holder.seal("not the holder's secret"))
    with django_capture_on_commit_callbacks(execute=True):
        copy = template_copy_push(copy_id=copy.pk)
    assert copy.status == "failed"
    assert copy.last_error == "HolderRejected: HTTP 401 (bad_signature)"
    assert copy.next_attempt_at > timezone.now()
    assert [(n, pk) for n, pk, c in sent if c] == [(COPY_TASK, copy.pk)]

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        erasure_watchdog(now=copy.next_attempt_at + timedelta(seconds=1))
    assert (COPY_TASK, copy.pk, None) in sent  # re-sent when due

    Holder.objects.filter(pk=holder.pk).update(
        sealed_secret=holder.seal(holder_proc.info["secret"])
    )
    assert template_copy_push(copy_id=copy.pk).status == "stored"


def test_an_erasure_supersedes_the_copies_not_yet_sent(
    held_child, holder, sent, settings, django_capture_on_commit_callbacks
):
    settings.ERASURE_STUCK_SECONDS = 0
    copy = TemplateCopy.objects.get(template__student=held_child)
    TemplateCopy.objects.filter(pk=copy.pk).update(status="failed")
    erasure = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    assert template_copy_push(copy_id=copy.pk).attempts == copy.attempts  # not sent
    with django_capture_on_commit_callbacks(execute=True):
        erasure_watchdog(now=timezone.now() + timedelta(hours=1))
    assert not [1 for name, pk, _ in sent if name == COPY_TASK]
    run_all(erasure)
    assert not TemplateCopy.objects.filter(pk=copy.pk).exists()
    assert template_copy_push(copy_id=copy.pk) is None  # a late task finds nothing to do
    assert ErasureRequest.objects.get(pk=erasure.pk).status == "verified"
