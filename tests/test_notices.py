"""The school's written notice really goes out (PoFA s.26(2); SPEC §2.2): a guardian linked by
any door is queued a notice and counts as notified only once the mail backend accepted it (or
staff recorded a paper letter). Failures retry, then show as "not reached"; a campaign sends
the notice again to those it has not reached."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from smtplib import SMTPServerDisconnected

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.utils import timezone

from consent.models import (
    AuditEvent,
    ConsentStatus,
    Guardian,
    Guardianship,
    NoticeDelivery,
    Notification,
    NotificationException,
    RosterImport,
)
from consent.rules import load_for_rule, purpose_statuses
from consent.services import (
    NOTICE_TASK,
    notice_deliveries_send,
    notice_watchdog,
    notification_exception_record,
)
from consent.services.notices import MAX_ATTEMPTS
from consent.status import consent_status_check
from consent.tasks import notice_send_task, roster_import_task
from portal.campaigns import campaign_create

from .factories import TEST_ACTOR, StudentFactory, grant, guardian, link
from .test_admin import staff_user
from .test_admin_doors import url
from .test_staff_api import key_client

Status = NoticeDelivery.Status


class RefusingBackend(BaseEmailBackend):
    """A mail server that is down: every send raises."""

    def send_messages(self, email_messages):
        raise SMTPServerDisconnected("Connection unexpectedly closed")


class DroppingBackend(BaseEmailBackend):
    """A backend that takes the message and says it sent none."""

    def send_messages(self, email_messages):
        return 0


@pytest.fixture
def queued(monkeypatch):
    """Tasks queued through consent.jobs: (task name, args, countdown), not sent."""
    from portal.celery import app

    jobs: list = []
    monkeypatch.setattr(
        app,
        "send_task",
        lambda name, args=None, **options: jobs.append((name, args, options.get("countdown"))),
    )
    return jobs


def run_notice_jobs(jobs: list) -> None:
    """What a worker does with the queued notice messages (taken off the list)."""
    for name, args, _ in list(jobs):
        if name == NOTICE_TASK:
            notice_send_task(*args)
    jobs.clear()


def reason(student, code="gate_access") -> str:
    loaded = load_for_rule([student.pk])[student.pk]
    return next(s.reason for s in purpose_statuses(loaded) if s.code == code)


def stored_reason(student, code="gate_access") -> str:
    return ConsentStatus.objects.get(student=student, purpose__code=code).reason


def notices_to(email: str) -> list:
    return [m for m in mail.outbox if m.to == [email]]


# --- Every door: linked, queued, not notified; accepted, notified --------------------------

NEW_PARENT = "new.parent@example.com"


def door_staff_api(child, **_):
    r = key_client(child.school).post(
        "/api/v1/staff/guardians/",
        {"email": NEW_PARENT, "name": "New Parent", "student_ids": [str(child.pk)]},
        format="json",
    )
    assert r.status_code == 201


def roster_text(child, language="en") -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "external_id",
            "name",
            "class_name",
            "guardian_email",
            "guardian_name",
            "guardian_language",
        ]
    )
    writer.writerow(
        [child.external_id, child.name, child.class_name, NEW_PARENT, "New Parent", language]
    )
    return out.getvalue()


def door_roster_command(child, tmp_path, **_):
    path = tmp_path / "roster.csv"
    path.write_text(roster_text(child))
    call_command("import_roster", str(path), "--school", child.school.slug, stdout=io.StringIO())


def door_roster_page(child, client, users, **_):
    client.force_login(users["school_admin"])
    upload = SimpleUploadedFile("r.csv", roster_text(child).encode(), "text/csv")
    assert client.post("/admin/roster/", {"school": child.school.pk, "csv": upload}).status_code
    roster_import_task(RosterImport.objects.get().pk)  # the worker's import


def door_admin_add_guardian(child, client, users, **_):
    """Admin's door: "Add guardian" to a child (a guardian's address is linked as it is)."""
    client.force_login(users["school_admin"])
    r = client.post(
        url(Guardian, "add"),
        {
            "email": NEW_PARENT,
            "name": "New Parent",
            "language": "en",
            "student": str(child.pk),
            "parental_responsibility": "on",
            "relationship": "",
        },
    )
    assert r.status_code == 302


DOORS = {
    "staff_api": door_staff_api,
    "roster_command": door_roster_command,
    "roster_page": door_roster_page,
    "admin_add_guardian": door_admin_add_guardian,
}


@pytest.fixture
def users(django_user_model, school):
    return {"school_admin": staff_user(django_user_model, school, name="admin_a")}


@pytest.mark.parametrize("door", list(DOORS))
def test_a_guardian_linked_by_any_door_is_notified_only_once_the_mail_server_accepted(
    door,
    school,
    purposes,
    client,
    users,
    tmp_path,
    queued,
    django_capture_on_commit_callbacks,
):
    child = StudentFactory(school=school)
    with django_capture_on_commit_callbacks(execute=True):
        DOORS[door](child, client=client, users=users, tmp_path=tmp_path)
    parent = Guardian.objects.get(email=NEW_PARENT)
    grant(child, purposes["gate_access"], parent)

    # Linked, and its notice queued (by id only); nothing sent, nobody notified.
    (delivery,) = NoticeDelivery.objects.filter(guardianship__guardian=parent)
    assert delivery.status == Status.PENDING
    notice_jobs = [args for name, args, _ in queued if name == NOTICE_TASK]
    assert notice_jobs == [[delivery.pk]]
    assert notices_to(NEW_PARENT) == []
    assert not Notification.objects.filter(guardianship__guardian=parent).exists()
    assert reason(child) == stored_reason(child) == "guardian_not_notified"

    run_notice_jobs(queued)  # the worker: the locmem backend accepts the email

    (notice,) = notices_to(NEW_PARENT)
    assert child.name in notice.subject and "Gate Access" in notice.body
    (notification,) = Notification.objects.filter(guardianship__guardian=parent)
    delivery.refresh_from_db()
    assert (notification.method, delivery.status) == ("email", Status.SENT)
    assert notification.sent_at == delivery.sent_at and delivery.notification == notification
    # The rule's input changed, and the stored statuses followed through the service.
    assert reason(child) == stored_reason(child) == "active"
    assert consent_status_check().drift == []
    event = AuditEvent.objects.get(action="consent.notification_recorded")
    assert event.data["method"] == "email" and event.actor_label == "notice delivery"


def test_the_roster_queues_its_notices_in_a_few_messages_and_sends_nothing_itself(
    school, tmp_path, queued, django_capture_on_commit_callbacks
):
    rows = [
        {"external_id": f"R{i}", "name": f"Child {i}", "guardian_email": f"g{i}@example.com"}
        for i in range(250)
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*rows[0], "guardian_name"])
    writer.writeheader()
    writer.writerows({**row, "guardian_name": "G"} for row in rows)
    path = tmp_path / "roster.csv"
    path.write_text(out.getvalue())
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_roster", str(path), "--school", school.slug, stdout=io.StringIO())

    assert mail.outbox == []  # nothing sent inside the import
    ids = sorted(NoticeDelivery.objects.values_list("pk", flat=True))
    assert len(ids) == 250
    # Two chunks of rows (200 + 50), at most 100 ids a message: 3 messages, each id once.
    assert [len(args) for _, args, _ in queued] == [100, 100, 50]
    assert sorted(i for _, args, _ in queued for i in args) == ids
    run_notice_jobs(queued)
    assert len(mail.outbox) == 250
    assert Notification.objects.filter(method="email").count() == 250


def test_seed_demo_sends_its_notices_through_the_mail_backend(db):
    call_command("seed_demo", stdout=io.StringIO())
    links = Guardianship.objects.filter(student__school__slug="demo")
    assert links.count() == 4
    for link_row in links:
        (notification,) = link_row.notifications.all()
        assert notification.method == "email" and notification.delivery.status == Status.SENT
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        link_row.guardian.email for link_row in links
    )


# --- The email itself --------------------------------------------------------------------


def test_the_notice_says_what_why_the_alternative_the_right_to_object_and_how_to_sign_in(
    school, purposes, queued
):
    child = StudentFactory(school=school)
    english = guardian("en@example.com", "Pat O'Brien")
    chinese = guardian("zh@example.com")
    chinese.language = "zh-hans"
    chinese.save()
    link(english, child, notified=False)
    link(chinese, child, notified=False)
    notice_deliveries_send(delivery_ids=NoticeDelivery.objects.values_list("pk", flat=True))

    (en,) = notices_to("en@example.com")
    assert en.body.startswith("Hello Pat O'Brien,")  # plain text: nothing HTML-escaped
    for words in (
        "face template: 128 numbers",  # what is processed
        "Gate Access",  # each purpose: its name, description and alternative
        "Uses the face for gate_access.",
        "Without biometrics: A card instead.",
        "the right to object",
        "dpo@test-school.example",
        "/sign-in/",
        "/schools/test-school/",
    ):
        assert words in en.body, words
    (zh,) = notices_to("zh@example.com")
    assert "书面通知" in zh.subject
    assert "反对" in zh.body and "Gate Access" in zh.body and "A card instead." in zh.body
    assert "right to object" not in zh.body
    assert NoticeDelivery.objects.get(guardianship__guardian=chinese).language == "zh-hans"


# --- Failures: retried with backoff, then "not reached"; a campaign reaches them ------------


def test_a_failing_mail_server_is_retried_with_backoff_then_shown_as_not_reached(
    school, purposes, settings, queued, admin_client, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.test_notices.RefusingBackend"
    child = StudentFactory(school=school)
    parent = guardian("bounce@example.com")
    link(parent, child, notified=False)
    grant(child, purposes["gate_access"], parent)
    (delivery,) = NoticeDelivery.objects.all()
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        report = notice_deliveries_send(delivery_ids=[delivery.pk])
    assert report.retrying == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.PENDING, 1)
    assert delivery.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    due = delivery.next_attempt_at - timezone.now()
    assert timedelta(minutes=3) < due < timedelta(minutes=7)  # 5 minutes, ±20% jitter
    ((name, args, countdown),) = queued
    assert (name, args) == (NOTICE_TASK, [delivery.pk]) and 180 < countdown < 420
    # The retry message arriving early (a duplicate) does not jump the backoff.
    assert notice_deliveries_send(delivery_ids=[delivery.pk]).skipped == [delivery.pk]

    delays = [due]
    for attempt in range(2, MAX_ATTEMPTS + 1):  # each retry when it is due
        before = NoticeDelivery.objects.get(pk=delivery.pk)
        notice_deliveries_send(delivery_ids=[delivery.pk], now=before.next_attempt_at)
        after = NoticeDelivery.objects.get(pk=delivery.pk)
        assert after.attempts == attempt
        if after.status == Status.PENDING:
            delays.append(after.next_attempt_at - before.next_attempt_at)
    assert len(delays) == MAX_ATTEMPTS - 1
    assert all(b > a for a, b in zip(delays, delays[1:], strict=False))  # backing off
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.FAILED, MAX_ATTEMPTS)
    assert mail.outbox == [] and not Notification.objects.exists()
    assert reason(child) == stored_reason(child) == "guardian_not_notified"
    event = AuditEvent.objects.get(action="consent.notice_not_reached")
    assert event.data == {
        "delivery": delivery.pk,
        "guardian": parent.pk,
        "attempts": MAX_ATTEMPTS,
        "error": "SMTPServerDisconnected",
    }
    page = admin_client.get(url(NoticeDelivery, "changelist") + "?reached=no").content.decode()
    assert f"Not reached (gave up after {MAX_ATTEMPTS} attempts)" in page


def test_a_backend_that_accepts_nothing_notifies_nobody(school, purposes, settings):
    settings.EMAIL_BACKEND = "tests.test_notices.DroppingBackend"
    child = StudentFactory(school=school)
    link(guardian("dropped@example.com"), child, notified=False)
    (delivery,) = NoticeDelivery.objects.all()
    assert notice_deliveries_send(delivery_ids=[delivery.pk]).retrying == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.last_error == "RuntimeError: the mail backend accepted nothing"
    assert not Notification.objects.exists()


def test_a_campaign_sends_the_notice_again_only_to_those_it_has_not_reached(
    school, purposes, child_a, parent_a, settings, queued, django_capture_on_commit_callbacks
):
    # parent_a was notified (child_a's fixture); two guardians the notice has not reached: one
    # whose mail server refused every attempt, one whose notice is still queued.
    settings.EMAIL_BACKEND = "tests.test_notices.RefusingBackend"
    child = StudentFactory(school=school)
    bounced, waiting = guardian("bounced@example.com"), guardian("waiting@example.com")
    link(bounced, child, notified=False)
    link(waiting, child, notified=False)
    grant(child, purposes["gate_access"], bounced)
    failed = NoticeDelivery.objects.get(guardianship__guardian=bounced)
    NoticeDelivery.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=MAX_ATTEMPTS)
    queued.clear()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaign_create(school=school, purpose=purposes["gate_access"], actor=TEST_ACTOR)

    assert campaign.notices_resent == 1  # the bounced one; the waiting one is on its way
    resent = NoticeDelivery.objects.get(guardianship__guardian=bounced, status=Status.PENDING)
    assert [args for _, args, _ in queued] == [[resent.pk]]
    assert (
        not NoticeDelivery.objects.filter(guardianship__guardian=parent_a)
        .exclude(status=Status.SENT)
        .exists()
    )
    assert mail.outbox == []  # no decision email to anyone not yet told
    run_notice_jobs(queued)
    assert [m.to for m in mail.outbox] == [["bounced@example.com"]]
    assert AuditEvent.objects.get(action="consent.campaign_sent").data["notices"] == 1
    # The waiting guardian still holds the child back; once their notice goes, it starts.
    assert reason(child) == "guardian_not_notified"
    notice_deliveries_send(
        delivery_ids=NoticeDelivery.objects.filter(guardianship__guardian=waiting).values_list(
            "pk", flat=True
        )
    )
    assert reason(child) == stored_reason(child) == "active"


# --- Idempotence and the watchdog ----------------------------------------------------------


def test_a_notice_task_delivered_twice_sends_once(school, purposes):
    child = StudentFactory(school=school)
    parent = guardian("twice@example.com")
    link(parent, child, notified=False)
    (delivery,) = NoticeDelivery.objects.all()
    notice_send_task(delivery.pk)
    notice_send_task(delivery.pk)
    assert len(notices_to("twice@example.com")) == 1
    assert Notification.objects.count() == 1
    # Another worker holding the claim: this one sends nothing.
    other = guardian("claimed@example.com")
    link(other, child, notified=False)
    taken = NoticeDelivery.objects.get(guardianship__guardian=other)
    NoticeDelivery.objects.filter(pk=taken.pk).update(status=Status.SENDING)
    assert notice_deliveries_send(delivery_ids=[taken.pk]).skipped == [taken.pk]
    assert notices_to("claimed@example.com") == []


def test_the_watchdog_requeues_lost_and_stuck_notices_and_a_stuck_one_may_go_twice(
    school, purposes, queued, django_capture_on_commit_callbacks
):
    child = StudentFactory(school=school)
    lost, stuck, fresh = (guardian(f"{n}@example.com") for n in ("lost", "stuck", "fresh"))
    for g in (lost, stuck, fresh):
        link(g, child, notified=False)
    now = timezone.now()
    long_ago = now - timedelta(minutes=11)
    rows = {d.guardianship.guardian_id: d for d in NoticeDelivery.objects.all()}
    # Its message never reached a worker.
    NoticeDelivery.objects.filter(pk=rows[lost.pk].pk).update(next_attempt_at=long_ago)
    # Its worker was killed after the mail server accepted, before the row was written.
    notice_deliveries_send(delivery_ids=[rows[stuck.pk].pk])
    NoticeDelivery.objects.filter(pk=rows[stuck.pk].pk).update(
        status=Status.SENDING, claimed_at=long_ago, sent_at=None, notification=None
    )
    Notification.objects.all().delete()
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        again = notice_watchdog(now=now)

    assert sorted(again) == sorted([rows[lost.pk].pk, rows[stuck.pk].pk])  # not the fresh one
    assert [args for _, args, _ in queued] == [sorted(again)]
    assert notice_watchdog(now=now + timedelta(minutes=1)) == []  # once per period
    run_notice_jobs(queued)
    assert len(notices_to("lost@example.com")) == 1
    assert len(notices_to("stuck@example.com")) == 2  # the accepted side: sent twice
    assert Notification.objects.filter(guardianship__guardian=stuck).count() == 1


# --- A paper letter ------------------------------------------------------------------------


def test_staff_record_a_paper_letter_with_its_date_and_who_recorded_it(
    school, purposes, client, users
):
    child = StudentFactory(school=school)
    parent = guardian("no.email@example.com")
    row = link(parent, child, notified=False)
    grant(child, purposes["gate_access"], parent)
    assert stored_reason(child) == "guardian_not_notified"
    staff = users["school_admin"]
    client.force_login(staff)
    page = url(Notification, "add")
    r = client.post(
        page,
        {
            "guardianship": row.pk,
            "sent_at_0": "2025-09-01",
            "sent_at_1": "09:00:00",
            "note": "Handed to the parent at the school office",
            "method": "email",  # not a field: staff cannot record an email
        },
    )
    assert r.status_code == 302
    (letter,) = Notification.objects.all()
    assert (letter.method, letter.recorded_by, letter.sent_at.date().isoformat()) == (
        "letter",
        staff,
        "2025-09-01",
    )
    event = AuditEvent.objects.get(action="consent.notification_recorded")
    assert (event.actor_kind, event.data["method"]) == ("staff", "letter")
    assert reason(child) == stored_reason(child) == "active"
    # The queued email still goes; the guardian is not notified twice over for the rule.
    assert NoticeDelivery.objects.get(guardianship=row).status == Status.PENDING


def test_a_guardian_excused_from_notification_is_never_emailed(school, purposes):
    """PoFA s.27(1)(c): the welfare of the child may require that a parent is not contacted.
    An exception recorded after the link stops the notice still queued; one recorded while its
    message waits on the broker is checked again before sending."""
    child = StudentFactory(school=school)
    row = link(guardian("not.to.contact@example.com"), child, notified=False)
    notification_exception_record(guardianship=row, reason="welfare", actor=TEST_ACTOR)
    (delivery,) = NoticeDelivery.objects.all()
    assert delivery.status == Status.EXCUSED
    assert notice_deliveries_send(delivery_ids=[delivery.pk]).skipped == [delivery.pk]

    other = link(guardian("also.not@example.com"), child, notified=False)
    NotificationException.objects.create(guardianship=other, reason="welfare")
    waiting = NoticeDelivery.objects.get(guardianship=other)
    assert notice_deliveries_send(delivery_ids=[waiting.pk]).skipped == [waiting.pk]
    waiting.refresh_from_db()
    assert waiting.status == Status.EXCUSED
    assert mail.outbox == [] and not Notification.objects.exists()
    assert reason(child) == "no_consent"  # excused counts as notified; nobody has granted
