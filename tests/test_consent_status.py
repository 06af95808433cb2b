"""The stored consent statuses (consent/status.py) agree with the live rule after every kind of
write, and the drift check finds a row that does not."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.models import ConsentStatus, NotificationException, Student
from consent.rules import load_for_rule, purpose_statuses
from consent.services import (
    child_refusal_record,
    consent_decide,
    notice_publish,
    student_create,
    student_leave,
)
from consent.status import (
    consent_status_check,
    consent_status_refresh,
    consent_status_table,
    students_by_consent,
)

from .factories import TEST_ACTOR, StudentFactory, grant, guardian, link

FILTERS = ("active", "objected", "child_refused")


def by_rule(school, value: str, at) -> set:
    """What the consent filter must return, asked of the live rule."""
    wanted = set()
    loaded = load_for_rule(Student.objects.filter(school=school).values("pk"))
    for pk, student in loaded.items():
        reasons = {s.reason for s in purpose_statuses(student, at=at)}
        if (
            (value == "active" and "active" in reasons)
            or (value == "objected" and reasons & {"guardian_objected", "guardian_withdrew"})
            or (value == "child_refused" and "child_refused" in reasons)
        ):
            wanted.add(pk)
    return wanted


def assert_table_agrees(school, at=None):
    at = at or timezone.now()
    students = Student.objects.filter(school=school)
    for value in FILTERS:
        got = set(students_by_consent(students, value, at=at).values_list("pk", flat=True))
        assert got == by_rule(school, value, at), value
    table = consent_status_table(students.values_list("pk", flat=True), at=at)
    for pk, student in load_for_rule(students.values("pk")).items():
        assert table[pk] == [(s.code, s.status) for s in purpose_statuses(student, at=at)]
    assert consent_status_check(school=school, at=at).drift == []


def decide(student, purpose, g, decision):
    return consent_decide(
        student=student,
        purpose=purpose,
        guardian=g,
        decision=decision,
        notice_version=purpose.current_notice.version,
        actor=TEST_ACTOR,
    )


@pytest.fixture
def crowd(school, purposes, parent_a, parent_b):
    """Four children: one granted, one undecided, two with both parents; everyone notified."""
    kids = [StudentFactory(school=school, name=f"Kid {i}") for i in range(4)]
    for kid in kids:
        link(parent_a, kid)
    for kid in kids[2:]:
        link(parent_b, kid)
    grant(kids[0], purposes["gate_access"], parent_a)
    grant(kids[2], purposes["gate_access"], parent_a)
    grant(kids[3], purposes["attendance"], parent_b)
    return kids


def active_ids(school, at=None):
    students = Student.objects.filter(school=school)
    return set(students_by_consent(students, "active", at=at).values_list("pk", flat=True))


def test_grant_and_withdraw(school, purposes, crowd, parent_a):
    assert active_ids(school) == {crowd[0].pk, crowd[2].pk, crowd[3].pk}
    assert_table_agrees(school)
    decide(crowd[0], purposes["gate_access"], parent_a, "withdraw")
    assert crowd[0].pk not in active_ids(school)
    objected = students_by_consent(Student.objects.filter(school=school), "objected")
    assert list(objected) == [crowd[0]]
    assert_table_agrees(school)


def test_one_parents_objection(school, purposes, crowd, parent_b):
    decide(crowd[2], purposes["gate_access"], parent_b, "object")
    assert crowd[2].pk not in active_ids(school)
    assert_table_agrees(school)


def test_child_refusal_and_its_lifting(school, purposes, crowd):
    child_refusal_record(student=crowd[3], actor=TEST_ACTOR)
    assert crowd[3].pk not in active_ids(school)
    refused = students_by_consent(Student.objects.filter(school=school), "child_refused")
    assert list(refused) == [crowd[3]]
    assert_table_agrees(school)
    child_refusal_record(student=crowd[3], actor=TEST_ACTOR, lifted=True)
    assert crowd[3].pk in active_ids(school)
    assert_table_agrees(school)


def test_leaver_now_and_leaver_from_a_later_date(school, purposes, crowd):
    student_leave(student=crowd[0], actor=TEST_ACTOR)
    assert crowd[0].pk not in active_ids(school)
    assert_table_agrees(school)
    later = timezone.now() + timedelta(days=10)
    student_leave(student=crowd[2], actor=TEST_ACTOR, at=later)
    assert crowd[2].pk in active_ids(school)  # on the roll until the leaving date
    assert ConsentStatus.objects.filter(student=crowd[2], recheck_at=later).count() == 2
    assert crowd[2].pk not in active_ids(school, at=later + timedelta(seconds=1))
    assert_table_agrees(school, at=later + timedelta(seconds=1))


def test_a_new_notice_version_makes_every_grant_stale(school, purposes, crowd):
    notice_publish(purpose=purposes["gate_access"], text="Notice v2", actor=TEST_ACTOR)
    assert active_ids(school) == {crowd[3].pk}  # only the attendance grant is left
    reasons = set(
        ConsentStatus.objects.filter(purpose=purposes["gate_access"]).values_list(
            "reason", flat=True
        )
    )
    assert "notice_changed" in reasons
    assert_table_agrees(school)


def test_expiry_by_time_alone(school, purposes, crowd):
    validity = timedelta(days=school.consent_validity_days)
    row = ConsentStatus.objects.get(student=crowd[0], purpose=purposes["gate_access"])
    assert row.active and row.expires_at is not None
    just_before = row.expires_at - timedelta(seconds=1)
    assert crowd[0].pk in active_ids(school, at=just_before)
    assert crowd[0].pk not in active_ids(school, at=row.expires_at)
    assert active_ids(school, at=timezone.now() + validity) == set()
    assert_table_agrees(school, at=row.expires_at)
    assert ConsentStatus.objects.get(pk=row.pk).reason == "active"  # nothing was rewritten


def test_a_guardian_linked_without_notification_blocks(school, purposes, crowd):
    late = guardian("late@example.com")
    link(late, crowd[0], notified=False)
    assert crowd[0].pk not in active_ids(school)
    assert_table_agrees(school)
    link_row = crowd[0].guardianships.get(guardian=late)
    NotificationException.objects.create(guardianship=link_row, reason="not_found")
    consent_status_refresh([crowd[0].pk])  # what the exception's admin page does
    assert crowd[0].pk in active_ids(school)
    assert_table_agrees(school)


def test_a_decision_recorded_for_later_counts_from_then(school, purposes, crowd, parent_b):
    later = timezone.now() + timedelta(hours=1)
    consent_decide(
        student=crowd[3],
        purpose=purposes["attendance"],
        guardian=parent_b,
        decision="withdraw",
        notice_version=None,
        at=later,
        actor=TEST_ACTOR,
    )
    assert crowd[3].pk in active_ids(school)
    assert crowd[3].pk not in active_ids(school, at=later)
    assert_table_agrees(school, at=later)


def test_drift_check_finds_and_repairs_a_planted_row(school, purposes, crowd, capsys):
    ConsentStatus.objects.filter(student=crowd[1], purpose=purposes["gate_access"]).update(
        active=True, reason="active"
    )
    ConsentStatus.objects.filter(student=crowd[0]).delete()
    # A child written as the roster does, before its chunk's refresh: no rows yet.
    student_create(
        school=school, external_id="NEW", name="New", actor=TEST_ACTOR, refresh_status=False
    )
    report = consent_status_check(school=school)
    drifted = {(d.student_id, d.stored) for d in report.drift}
    assert (crowd[1].pk, "active") in drifted
    assert (crowd[0].pk, "missing") in drifted
    assert len(report.drift) == 5  # the planted row, crowd[0]'s two and the new child's two
    call_command("consent_status_check", "--school", school.slug, "--repair")
    out = capsys.readouterr().out
    assert "5 rows differ from the rule" in out and "repaired" in out
    assert consent_status_check(school=school).drift == []
    assert_table_agrees(school)


def test_the_filter_costs_a_fixed_number_of_queries(school, purposes, parent_a):
    def queries_for(n):
        for _ in range(n):
            kid = StudentFactory(school=school)
            link(parent_a, kid)
            grant(kid, purposes["gate_access"], parent_a)
        students = Student.objects.filter(school=school)
        with CaptureQueriesContext(connection) as ctx:
            found = len(students_by_consent(students, "active"))
            consent_status_table(students.values_list("pk", flat=True))
        return found, len(ctx.captured_queries)

    small = queries_for(3)
    large = queries_for(30)
    assert small[0] == 3 and large[0] == 33
    assert small[1] == large[1] <= 6


# --- Write paths in Django admin ----------------------------------------------------------


class _FormData(HTMLParser):
    """The values a browser would submit from the page's main form (inputs, selects,
    textareas), so a test can change one field and post the rest as they were."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data[name] = a.get("value", "on")
            else:
                self.data[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


def page_form(client, url: str) -> dict:
    parser = _FormData()
    parser.feed(client.get(url).content.decode())
    return parser.data


@pytest.fixture
def staff(client, django_user_model, school):
    from .test_admin import staff_user

    client.force_login(staff_user(django_user_model, school, name="status_staff"))
    return client


def listed(client, value: str) -> str:
    return client.get(f"/admin/consent/student/?consent={value}").content.decode()


def test_admin_disabling_a_purpose_and_shortening_validity(staff, school, purposes, crowd):
    assert "Kid 0" in listed(staff, "active")
    gate = purposes["gate_access"]
    data = page_form(staff, f"/admin/consent/purpose/{gate.pk}/change/")
    data.pop("enabled", None)
    r = staff.post(f"/admin/consent/purpose/{gate.pk}/change/", data)
    assert r.status_code == 302, r.content.decode()[:3000]
    active = listed(staff, "active")
    assert "Kid 0" not in active and "Kid 3" in active  # Kid 3 has attendance
    assert_table_agrees(school)

    decision = crowd[3].decisions.get()
    school_url = f"/admin/consent/school/{school.pk}/change/"
    data = page_form(staff, school_url)
    data["consent_validity_days"] = "1"
    # The grant was given two days ago as far as a 1-day validity is concerned.
    later = decision.at + timedelta(days=2)
    r = staff.post(school_url, data)
    assert r.status_code == 302
    assert crowd[3].pk in active_ids(school)  # still inside one day
    assert crowd[3].pk not in active_ids(school, at=later)
    assert_table_agrees(school, at=later)


def test_admin_recording_a_notification_exception(staff, school, purposes, crowd):
    late = guardian("late2@example.com")
    link_row = link(late, crowd[0], notified=False)
    assert "Kid 0" not in listed(staff, "active")
    r = staff.post(
        "/admin/consent/notificationexception/add/",
        {"guardianship": link_row.pk, "reason": "welfare", "note": "Court order"},
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    assert "Kid 0" in listed(staff, "active")
    assert_table_agrees(school)
