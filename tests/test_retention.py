"""Retention jobs with --as-of time travel (SPEC §6)."""

import signal
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from biometrics.models import ErasureRequest, Holder, RecognitionEvent, RetentionRun
from biometrics.retention import retention_run
from consent.models import AuditEvent
from consent.services import student_leave

from .factories import TEST_ACTOR, StudentFactory
from .processes import ROOT, process_env, start_holder, wait_for


def enforce(job, as_of, *extra):
    call_command("enforce_retention", "--job", job, "--as-of", as_of.isoformat(), *extra)


def test_a_leaver_is_erased_on_day_30_not_day_29(enrolled_child_a):
    left = timezone.now()
    student_leave(student=enrolled_child_a, actor=TEST_ACTOR, at=left)
    enforce("leavers", left + timedelta(days=29))
    assert not ErasureRequest.objects.filter(student=enrolled_child_a).exists()
    enforce("leavers", left + timedelta(days=30))
    (erasure,) = ErasureRequest.objects.filter(student=enrolled_child_a)
    assert erasure.trigger == "leaver"
    enforce("leavers", left + timedelta(days=31))  # idempotent
    assert ErasureRequest.objects.filter(student=enrolled_child_a).count() == 1


def test_events_past_the_window_are_purged_and_newer_kept(child_a, purposes):
    now = timezone.now()
    for days in (31, 29):
        RecognitionEvent.objects.create(
            student=child_a,
            purpose=purposes["gate_access"],
            device="d",
            distance=0.3,
            at=now - timedelta(days=days),
        )
    enforce("recognition_events", now, "--dry-run")
    assert RecognitionEvent.objects.count() == 2
    enforce("recognition_events", now)
    (kept,) = RecognitionEvent.objects.all()
    assert (now - kept.at).days == 29
    run = RetentionRun.objects.filter(job="recognition_events", dry_run=False).get()
    assert run.counts["events_deleted"] == 1
    assert AuditEvent.objects.filter(action="retention.recognition_events").count() == 2


def test_expiring_consent_is_reminded_then_erased(enrolled_child_a, parent_a):
    granted = enrolled_child_a.decisions.get().at
    validity = timedelta(days=enrolled_child_a.school.consent_validity_days)
    enforce("consents", granted + validity - timedelta(days=31))
    assert not mail.outbox
    enforce("consents", granted + validity - timedelta(days=29))
    assert [m.to for m in mail.outbox] == [[parent_a.email]]
    enforce("consents", granted + validity - timedelta(days=28))
    assert len(mail.outbox) == 1  # once per grant
    assert not ErasureRequest.objects.exists()
    enforce("consents", granted + validity + timedelta(seconds=1))
    assert ErasureRequest.objects.get(student=enrolled_child_a).trigger == "consent_expired"


def test_old_templates_are_erased_after_the_maximum_age(enrolled_child_a):
    max_age = timedelta(days=enrolled_child_a.school.template_max_age_days)
    now = timezone.now()
    enforce("template_age", now + max_age - timedelta(days=1))
    assert not ErasureRequest.objects.exists()
    enforce("template_age", now + max_age + timedelta(days=1))
    assert ErasureRequest.objects.get().trigger == "template_age"


def test_policy_bounds_are_enforced(school):
    school.leaver_window_days = 31
    with pytest.raises(ValidationError) as caught:
        school.full_clean()
    assert "30 days" in str(caught.value)
    school.leaver_window_days = 30
    school.template_max_age_days = 4 * 365
    with pytest.raises(ValidationError):
        school.full_clean()


def test_reconciliation_erases_an_unknown_subject_planted_in_a_holder(tmp_path, child_a, school):
    proc = start_holder(tmp_path)
    try:
        Holder.objects.create(
            school=school, name="Gate", base_url=proc.info["url"], secret=proc.info["secret"]
        )
        client = proc.info["client"]
        stranger = str(uuid.uuid4())
        client.put_template(stranger, str(uuid.uuid4()), [0.1] * 128, "planted")
        # and a child who is known but has no active purpose any more
        client.put_template(str(child_a.subject_id), str(uuid.uuid4()), [0.2] * 128, "m")
        unconsented = StudentFactory(school=school)
        client.put_template(str(unconsented.subject_id), str(uuid.uuid4()), [0.3] * 128, "m")
        run = retention_run("reconcile")
        assert run.counts["unknown_subjects_erased"] == 1
        assert client.get_subject(stranger) is None
        assert client.get_subject(str(unconsented.subject_id)) is None  # stray copy erased
        assert client.get_subject(str(child_a.subject_id)) is not None  # consented: kept
    finally:
        proc.stop()


@pytest.mark.django_db(transaction=True)
def test_a_killed_purge_resumes_with_no_double_effect(child_a, purposes, tmp_path):
    now = timezone.now()
    old, new = 20000, 500
    RecognitionEvent.objects.bulk_create(
        [
            RecognitionEvent(
                student=child_a,
                purpose=purposes["gate_access"],
                device="d",
                distance=0.3,
                at=now - timedelta(days=40, seconds=i),
            )
            for i in range(old)
        ]
        + [
            RecognitionEvent(
                student=child_a,
                purpose=purposes["gate_access"],
                device="d",
                distance=0.3,
                at=now - timedelta(days=1, seconds=i),
            )
            for i in range(new)
        ],
        batch_size=5000,
    )
    args = [
        sys.executable,
        "manage.py",
        "enforce_retention",
        "--job",
        "recognition_events",
        "--as-of",
        now.isoformat(),
    ]
    env = process_env()
    first = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(
        lambda: RecognitionEvent.objects.count() < old + new,
        timeout=60,
        interval=0.01,
        what="the purge to start",
    )
    first.send_signal(signal.SIGKILL)
    first.wait()
    remaining = RecognitionEvent.objects.count()
    assert new <= remaining < old + new
    second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "recognition_events" in second.stdout
    assert RecognitionEvent.objects.count() == new
    assert all((now - e.at).days < 30 for e in RecognitionEvent.objects.all()[:50])
