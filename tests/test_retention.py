"""Retention jobs with --as-of time travel (docs/erasure.md, "Retention jobs")."""

import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, connections
from django.test import TestCase
from django.utils import timezone

from biometrics import demo_photos
from biometrics.erasure import STEP_TASK, erasure_open, erasure_step_run, erasure_steps_for
from biometrics.models import (
    ConsentReminder,
    ErasureRequest,
    ErasureStep,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
    RetentionRun,
)
from biometrics.services import photo_enrol
from consent.models import AuditEvent, ConsentDecision, Decision, Student
from consent.services import consent_decide, student_leave
from portal.exports import export_build, export_request
from portal.models import Export
from portal.retention import JOBS, retention_run

from .factories import TEST_ACTOR, StudentFactory, grant, link
from .processes import ROOT, process_env, start_holder, wait_for


def enforce(job, as_of, *extra):
    call_command("enforce_retention", "--job", job, "--as-of", as_of.isoformat(), *extra)


def enforce_committed(job, as_of, *extra):
    """The command as its own process runs it: what it queues after commit is sent."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        enforce(job, as_of, *extra)


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


def test_the_match_index_change_log_is_kept_a_day(child_a):
    """The log names children whose templates changed (an erasure's among them): the hourly
    events job deletes rows older than a day, even for a school whose templates stopped
    changing."""
    from biometrics.matching import CHANGES_KEPT, match_index_bump
    from biometrics.models import MatchIndexChange

    now = timezone.now()
    match_index_bump(child_a.school_id, [child_a.pk])
    MatchIndexChange.objects.update(at=now - CHANGES_KEPT - timedelta(minutes=1))
    match_index_bump(child_a.school_id, [child_a.pk])  # prunes the old row itself
    assert MatchIndexChange.objects.count() == 1
    enforce("recognition_events", now + timedelta(hours=23))
    assert MatchIndexChange.objects.count() == 1
    enforce("recognition_events", now + CHANGES_KEPT + timedelta(minutes=1), "--dry-run")
    assert MatchIndexChange.objects.count() == 1
    enforce("recognition_events", now + CHANGES_KEPT + timedelta(minutes=1))
    assert not MatchIndexChange.objects.exists()
    run = RetentionRun.objects.filter(job="recognition_events", dry_run=False).latest("id")
    assert run.counts["match_index_changes_deleted"] == 1


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


# --- every job through the command: --as-of, --dry-run, the summary (issue #7) ---------------


@dataclass
class Scenario:
    """A fixture for one job: when to run it, what its summary must count (dry and real), how
    to check the work was done, and any state held outside the database (a holder)."""

    as_of: datetime
    counts: dict
    done: Callable[[], None]
    outside: Callable[[], object] = lambda: None


def _leavers(request) -> Scenario:
    child = request.getfixturevalue("enrolled_child_a")
    left = timezone.now()
    student_leave(student=child, actor=TEST_ACTOR, at=left)

    def done():
        assert ErasureRequest.objects.get(student=child).trigger == "leaver"

    return Scenario(left + timedelta(days=30), {"erasures_started": 1}, done)


def _template_age(request) -> Scenario:
    child = request.getfixturevalue("enrolled_child_a")
    max_age = timedelta(days=child.school.template_max_age_days)

    def done():
        assert ErasureRequest.objects.get(student=child).trigger == "template_age"

    return Scenario(timezone.now() + max_age + timedelta(days=1), {"erasures_started": 1}, done)


def _recognition_events(request) -> Scenario:
    child = request.getfixturevalue("child_a")
    purpose = request.getfixturevalue("purposes")["gate_access"]
    now = timezone.now()
    for at in (now - timedelta(days=2), now):
        RecognitionEvent.objects.create(
            student=child, purpose=purpose, device="d", distance=0.3, at=at
        )

    def done():
        (kept,) = RecognitionEvent.objects.all()
        assert kept.at == now

    # 29 days on, the event from two days ago is 31 days old: past the 30-day window.
    return Scenario(now + timedelta(days=29), {"events_deleted": 1}, done)


def _consents(request) -> Scenario:
    child = request.getfixturevalue("enrolled_child_a")
    parent_b = request.getfixturevalue("parent_b")
    purpose = request.getfixturevalue("purposes")["gate_access"]
    granted = child.decisions.get().at
    validity = timedelta(days=child.school.consent_validity_days)
    # another child whose grant (ten days later) expires within the next 30 days: reminded
    later = StudentFactory(school=child.school)
    link(parent_b, later)
    grant(later, purpose, parent_b, at=granted + timedelta(days=10))

    def done():
        assert ErasureRequest.objects.get(student=child).trigger == "consent_expired"
        assert not ErasureRequest.objects.filter(student=later).exists()
        assert [m.to for m in mail.outbox] == [[parent_b.email]]

    return Scenario(
        granted + validity + timedelta(seconds=1),
        {"erasures_started": 1, "reminders_sent": 1},
        done,
    )


def _exports(request) -> Scenario:
    media_dir = request.getfixturevalue("media_dir")
    export = build_export(request.getfixturevalue("child_a"), request.getfixturevalue("parent_a"))
    stored = media_dir / export.storage_name
    assert stored.exists()

    def done():
        export.refresh_from_db()
        assert export.status == "expired"
        assert not stored.exists()

    return Scenario(export.expires_at + timedelta(seconds=1), {"exports_expired": 1}, done)


def _erasure_watchdog(request) -> Scenario:
    child = request.getfixturevalue("child_a")
    queued = request.getfixturevalue("queued_steps")
    erasure = erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
    # As if the worker running it died: every step left "running", its lease not renewed.
    lease = timezone.now() + timedelta(seconds=settings.ERASURE_LEASE_SECONDS)
    ErasureStep.objects.filter(request=erasure).update(status="running", lease_until=lease)

    def done():
        assert set(erasure.steps.values_list("status", flat=True)) == {"pending"}
        assert [ErasureStep.objects.get(pk=pk).kind for pk in queued] == ["database"]
        assert RetentionRun.objects.get(dry_run=False).counts["steps_redriven"] == 1

    steps = erasure.steps.count()
    return Scenario(lease + timedelta(seconds=1), {"leases_expired": steps}, done)


def _reconcile(request) -> Scenario:
    tmp_path = request.getfixturevalue("tmp_path")
    school = request.getfixturevalue("school")
    child = request.getfixturevalue("child_a")
    parent_b = request.getfixturevalue("parent_b")
    purpose = request.getfixturevalue("purposes")["gate_access"]
    proc = start_holder(tmp_path)
    request.addfinalizer(proc.stop)
    Holder.objects.create(
        school=school, name="Gate", base_url=proc.info["url"], secret=proc.info["secret"]
    )
    client = proc.info["client"]
    validity = timedelta(days=school.consent_validity_days)
    as_of = timezone.now() + validity + timedelta(days=1)
    # A child granted later is still consented then: the holder keeps their copy.
    renewed = StudentFactory(school=school)
    link(parent_b, renewed)
    grant(renewed, purpose, parent_b, at=as_of - timedelta(days=5))
    stranger = str(uuid.uuid4())
    for subject in (stranger, str(child.subject_id), str(renewed.subject_id)):
        client.put_template(subject, str(uuid.uuid4()), [0.1] * 128, "m")

    def done():
        assert client.get_subject(stranger) is None
        assert client.get_subject(str(child.subject_id)) is None  # consent expired by then
        assert client.get_subject(str(renewed.subject_id)) is not None

    return Scenario(
        as_of,
        {"subjects_checked": 3, "unknown_subjects_erased": 1, "erasures_started": 1},
        done,
        outside=lambda: sorted(client.iter_subjects()),
    )


SCENARIOS = {
    "leavers": _leavers,
    "template_age": _template_age,
    "recognition_events": _recognition_events,
    "consents": _consents,
    "exports": _exports,
    "erasure_watchdog": _erasure_watchdog,
    "reconcile": _reconcile,
}
WATCHED = [
    Student,
    ConsentDecision,
    ConsentReminder,
    Photo,
    FaceTemplate,
    RecognitionEvent,
    ErasureRequest,
    ErasureStep,
    Export,
    Holder,
]


def build_export(child, parent):
    return export_build(export_id=export_request(student=child, guardian=parent).pk)


@pytest.fixture
def queued_steps(monkeypatch):
    """Erasure steps queued (captured instead of sent to the broker); other tasks are dropped."""
    from portal.celery import app

    queued = []

    def send_task(name, args=None, **options):
        if name == STEP_TASK:
            queued.append(args[0])

    monkeypatch.setattr(app, "send_task", send_task)
    return queued


def state(media_dir, scenario: Scenario):
    """Everything a retention job may change: rows, stored files, mail, a holder's subjects."""
    rows = {m.__name__: list(m.objects.order_by("pk").values()) for m in WATCHED}
    rows["audit"] = list(
        AuditEvent.objects.exclude(action__startswith="retention.")
        .order_by("pk")
        .values_list("pk", "action")
    )
    files = sorted(str(p.relative_to(media_dir)) for p in media_dir.rglob("*") if p.is_file())
    return rows, files, len(mail.outbox), scenario.outside()


def test_every_job_has_a_scenario():
    assert set(SCENARIOS) == set(JOBS)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_each_job_dry_run_changes_nothing_then_the_command_does_the_work(
    job, request, db, media_dir, queued_steps
):
    scenario = SCENARIOS[job](request)
    before = state(media_dir, scenario)
    # The watchdog queues its work when it runs, as its own process would (no outer transaction).
    run = enforce_committed if job == "erasure_watchdog" else enforce

    run(job, scenario.as_of, "--dry-run")
    assert state(media_dir, scenario) == before
    assert not queued_steps
    dry = RetentionRun.objects.get(job=job)
    assert dry.dry_run is True
    assert dry.as_of == scenario.as_of
    assert dry.finished_at is not None
    assert "seconds" in dry.counts
    assert {k: dry.counts.get(k) for k in scenario.counts} == scenario.counts  # would do
    (audit,) = AuditEvent.objects.filter(action=f"retention.{job}")
    assert audit.data["dry_run"] is True
    assert audit.data["as_of"] == scenario.as_of.isoformat()
    assert {k: audit.data.get(k) for k in scenario.counts} == scenario.counts

    run(job, scenario.as_of)
    real = RetentionRun.objects.get(job=job, dry_run=False)
    assert {k: real.counts.get(k) for k in scenario.counts} == scenario.counts
    assert AuditEvent.objects.filter(action=f"retention.{job}", data__dry_run=False).count() == 1
    scenario.done()
    assert state(media_dir, scenario) != before


# --- exports, the watchdog, two copies at once, the admin ---------------------------------------


def test_an_expired_export_file_is_deleted_by_the_job_and_its_link_answers_410(
    child_a, parent_a, api_a, web_a, media_dir
):
    old = build_export(child_a, parent_a)
    child_a.school.export_expiry_hours = 96
    child_a.school.save(update_fields=["export_expiry_hours"])
    fresh = build_export(child_a, parent_a)
    old_file, fresh_file = media_dir / old.storage_name, media_dir / fresh.storage_name
    assert fresh.expires_at - old.expires_at > timedelta(hours=23)

    enforce("exports", old.expires_at - timedelta(minutes=1))
    old.refresh_from_db()
    assert old.status == "ready"
    assert old_file.exists()

    enforce("exports", old.expires_at + timedelta(minutes=1))
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == "expired"
    assert not old_file.exists()
    assert fresh.status == "ready"
    assert fresh_file.exists()
    counts = [r.counts["exports_expired"] for r in RetentionRun.objects.order_by("started_at")]
    assert counts == [0, 1]
    # The real clock has not reached the expiry: the link is gone because the job expired it.
    assert timezone.now() < old.expires_at
    r = api_a.get(f"/api/v1/exports/{old.pk}/download/")
    assert r.status_code == 410
    assert r.json()["error"] == "expired"
    assert web_a.get(f"/exports/{old.pk}/download/").status_code == 410
    assert api_a.get(f"/api/v1/exports/{fresh.pk}/download/").status_code == 200


def test_the_watchdog_job_redrives_a_stale_step_and_the_erasure_completes(
    enrolled_child_a, media_dir, queued_steps, django_capture_on_commit_callbacks
):
    erasure = erasure_open(student=enrolled_child_a, trigger="staff", actor=TEST_ACTOR)
    db_step = erasure.steps.get(kind="database")
    lease = timezone.now() + timedelta(seconds=settings.ERASURE_LEASE_SECONDS)
    # Its worker claimed it, then died: the lease is not renewed.
    ErasureStep.objects.filter(pk=db_step.pk).update(status="running", lease_until=lease)

    enforce_committed("erasure_watchdog", lease - timedelta(seconds=1))
    db_step.refresh_from_db()
    assert db_step.status == "running"  # the lease still runs: its worker may be alive
    assert not queued_steps

    enforce_committed("erasure_watchdog", lease + timedelta(seconds=1))
    db_step.refresh_from_db()
    assert db_step.status == "pending"
    assert db_step.lease_until is None
    assert queued_steps == [db_step.pk]
    run = RetentionRun.objects.filter(job="erasure_watchdog").order_by("-started_at").first()
    assert run.counts["steps_redriven"] == 1
    assert run.counts["leases_expired"] == 1
    assert AuditEvent.objects.filter(action="erasure.watchdog_redrove").count() == 1

    # The re-driven task does the work: the child's data is gone and the erasure is sealed.
    with django_capture_on_commit_callbacks(execute=True):
        erasure_step_run(step_id=queued_steps.pop(0))
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    assert not FaceTemplate.objects.filter(student=enrolled_child_a).exists()
    assert not Photo.objects.filter(student=enrolled_child_a).exists()
    assert not [p for p in media_dir.rglob("*") if p.is_file()]


def test_the_leavers_job_run_twice_opens_one_erasure(enrolled_child_a, child_b):
    left = timezone.now()
    for child in (enrolled_child_a, child_b):  # child B holds no biometric data
        student_leave(student=child, actor=TEST_ACTOR, at=left)
    as_of = left + timedelta(days=30)
    first = retention_run("leavers", as_of=as_of)
    second = retention_run("leavers", as_of=as_of)
    assert (first.counts["erasures_started"], second.counts["erasures_started"]) == (1, 0)
    assert list(ErasureRequest.objects.values_list("student_id", flat=True)) == [
        enrolled_child_a.pk
    ]
    assert AuditEvent.objects.filter(action="erasure.requested").count() == 1


def test_the_consents_job_run_twice_reminds_once_and_erases_once(enrolled_child_a, parent_a):
    granted = enrolled_child_a.decisions.get().at
    validity = timedelta(days=enrolled_child_a.school.consent_validity_days)
    soon = granted + validity - timedelta(days=29)
    counts = [retention_run("consents", as_of=soon).counts["reminders_sent"] for _ in range(2)]
    assert counts == [1, 0]
    assert [m.to for m in mail.outbox] == [[parent_a.email]]
    after = granted + validity + timedelta(seconds=1)
    counts = [retention_run("consents", as_of=after).counts["erasures_started"] for _ in range(2)]
    assert counts == [1, 0]
    assert ErasureRequest.objects.get().trigger == "consent_expired"


def test_no_reminder_for_a_grant_that_was_withdrawn_or_renewed(enrolled_child_a, parent_a):
    """'Your consent ends on ...' to a parent who withdrew, or who granted again since, is
    false: only a guardian's latest decision, if it is a grant, is reminded."""
    purpose = enrolled_child_a.decisions.get().purpose
    granted = enrolled_child_a.decisions.get().at
    validity = timedelta(days=enrolled_child_a.school.consent_validity_days)
    grant(enrolled_child_a, purpose, parent_a, at=granted + timedelta(days=100))  # renewed
    retention_run("consents", as_of=granted + validity - timedelta(days=29))
    assert not mail.outbox
    # the renewed grant is reminded before it ends
    retention_run("consents", as_of=granted + timedelta(days=100) + validity - timedelta(days=29))
    assert [m.to for m in mail.outbox] == [[parent_a.email]]


def test_no_reminder_after_the_parent_withdrew(child_a, parent_a, purposes):
    granted = child_a.decisions.get().at
    validity = timedelta(days=child_a.school.consent_validity_days)
    consent_decide(
        student=child_a,
        purpose=purposes["gate_access"],
        guardian=parent_a,
        decision=Decision.WITHDRAW,
        notice_version=1,
        at=granted + timedelta(days=1),
    )
    run = retention_run("consents", as_of=granted + validity - timedelta(days=29))
    assert run.counts["reminders_sent"] == 0
    assert not mail.outbox


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("job", ["leavers", "consents"])
def test_two_copies_of_a_job_at_once_open_one_erasure_per_child(
    job, school, purposes, parent_a, monkeypatch, queued_steps
):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite lets one writer at a time, so nothing can race")
    from biometrics import retention

    now = timezone.now()
    children = []
    for _ in range(20):
        child = StudentFactory(school=school)
        link(parent_a, child)
        grant(child, purposes["gate_access"], parent_a, at=now)
        FaceTemplate.objects.create(student=child, ciphertext=b"sealed")
        children.append(child)
    if job == "leavers":
        for child in children:
            student_leave(student=child, actor=TEST_ACTOR, at=now)
        as_of = now + timedelta(days=30)
    else:
        as_of = now + timedelta(days=school.consent_validity_days, seconds=1)

    # Both copies look for children without an open erasure at the same moment, then open.
    together = threading.Barrier(2, timeout=30)
    real_open = retention._open_erasures

    def open_together(*args, **kwargs):
        together.wait()
        return real_open(*args, **kwargs)

    monkeypatch.setattr(retention, "_open_erasures", open_together)
    runs, errors = [], []

    def copy():
        try:
            runs.append(retention_run(job, as_of=as_of))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(runs) == 2
    open_per_child = Counter(ErasureRequest.objects.values_list("student_id", flat=True))
    assert open_per_child == Counter({c.pk: 1 for c in children})
    systems = len(erasure_steps_for(school.pk))  # one step per system, the child's key last
    assert ErasureStep.objects.count() == systems * len(children)
    assert AuditEvent.objects.filter(action="erasure.requested").count() == len(children)
    # The two summaries add up to what was done: no child counted by both copies.
    assert sum(r.counts["erasures_started"] for r in runs) == len(children)


def test_the_admin_lists_each_run_with_its_counts(enrolled_child_a, client, django_user_model):
    left = timezone.now()
    student_leave(student=enrolled_child_a, actor=TEST_ACTOR, at=left)
    enforce("leavers", left + timedelta(days=30), "--dry-run")
    enforce("recognition_events", left)
    admin_user = django_user_model.objects.create_superuser("dpo", "dpo@example.com", "pw-dpo")
    client.force_login(admin_user)
    page = client.get("/admin/biometrics/retentionrun/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 retention runs" in html
    rows = changelist_rows(html)
    assert set(rows) == {"leavers", "recognition_events"}
    assert "erasures_started" in rows["leavers"]
    assert "icon-yes" in rows["leavers"]  # dry run
    assert "events_deleted" in rows["recognition_events"]
    assert "icon-no" in rows["recognition_events"]
    dry_only = client.get("/admin/biometrics/retentionrun/?dry_run__exact=1")
    assert set(changelist_rows(dry_only.content.decode())) == {"leavers"}


def changelist_rows(html: str) -> dict:
    """The admin changelist's rows, by the job named in the first column."""
    rows = [r.split("</tr>")[0] for r in html.split("<tr") if 'class="field-job"' in r]
    return {r.split('class="field-job">')[1].split(">")[1].split("<")[0]: r for r in rows}


def test_expired_consent_erases_a_child_held_only_as_a_photo_and_events(child_a, purposes):
    """No template (a photo still waiting for the faces worker), yet data is held: consent
    running out must still start the erasure."""
    photo_enrol(student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    assert Photo.objects.filter(student=child_a).exists()
    assert not FaceTemplate.objects.filter(student=child_a).exists()
    granted = child_a.decisions.get().at
    validity = timedelta(days=child_a.school.consent_validity_days)
    enforce("consents", granted + validity - timedelta(days=1))
    assert not ErasureRequest.objects.exists()
    enforce("consents", granted + validity + timedelta(seconds=1))
    assert ErasureRequest.objects.get(student=child_a).trigger == "consent_expired"


def test_a_reminder_that_could_not_be_sent_is_sent_on_the_next_run(
    enrolled_child_a, parent_a, monkeypatch
):
    import smtplib

    from biometrics import retention

    granted = enrolled_child_a.decisions.get().at
    due = granted + timedelta(days=enrolled_child_a.school.consent_validity_days - 29)
    real_send = retention.send_mail

    def mail_server_down(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("down")

    monkeypatch.setattr(retention, "send_mail", mail_server_down)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        enforce("consents", due)
    assert not mail.outbox
    monkeypatch.setattr(retention, "send_mail", real_send)
    enforce("consents", due + timedelta(hours=1))
    assert [m.to for m in mail.outbox] == [[parent_a.email]]
