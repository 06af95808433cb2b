"""load_for_rule(rule_only=True), the loader identification uses per candidate, decides exactly
what the default loader decides, in a fixed number of queries and without touching a column it
did not load."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.models import Decision, NotificationException, Student
from consent.rules import load_for_rule, purpose_statuses
from consent.services import (
    child_refusal_record,
    consent_decide,
    notice_publish,
    student_leave,
)

from .factories import TEST_ACTOR, StudentFactory, grant, guardian, link

RULE_ONLY_STATEMENTS = 8


def statements(queries) -> int:
    """SQL statements run: on PostgreSQL the eight go in one round trip (consent.compiled)."""
    return sum(len(q["sql"].split("; SELECT ")) for q in queries)


def prefetched(student):
    """The student as the prefetching loader loads many (a queryset of ids takes that path;
    a list of one id takes the compiled one)."""
    return load_for_rule(Student.objects.filter(pk=student.pk).values("pk"))[student.pk]


def rows(student) -> dict:
    """Every row a loader attached, with every column, in the order it attached them."""

    def row(obj):
        return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}

    school = student.school
    return {
        "student": row(student),
        "school": row(school),
        "purposes": [
            (
                row(p),
                [row(t) for t in p.texts.all()],
                [(row(n), [row(t) for t in n.texts.all()]) for n in p.notices.all()],
            )
            for p in school.purposes.all()
        ],
        "guardianships": [
            (
                row(g),
                [row(n) for n in g.notifications.all()],
                [row(e) for e in g.notification_exceptions.all()],
            )
            for g in student.guardianships.all()
        ],
        "decisions": [row(d) for d in student.decisions.all()],
    }


def decisions_both_ways(student, at=None):
    full = purpose_statuses(prefetched(student), at=at)
    # One student's loader (pages, decisions) loads every row and column the prefetching
    # loader does, texts included, in the same order, and reads nothing more afterwards.
    expected = rows(prefetched(student))
    one = load_for_rule([student.pk])[student.pk]
    with CaptureQueriesContext(connection) as later:
        got = rows(one)
        one_statuses = purpose_statuses(one, at=at)
    assert got == expected
    assert [(s.code, s.active, s.reason, s.expires_at) for s in one_statuses] == [
        (s.code, s.active, s.reason, s.expires_at) for s in full
    ]
    assert not later.captured_queries
    with CaptureQueriesContext(connection) as queries:
        lean = load_for_rule([student.pk], rule_only=True)[student.pk]
        lean_statuses = purpose_statuses(lean, at=at)
    # Loading only: the rule reads nothing deferred (a deferred column would be one more query).
    assert statements(queries) == RULE_ONLY_STATEMENTS
    assert len(queries) == (1 if connection.vendor == "postgresql" else RULE_ONLY_STATEMENTS)

    def seen(statuses):
        return [(s.code, s.active, s.reason, s.expires_at) for s in statuses]

    assert seen(lean_statuses) == seen(full)
    return {s.code: s.reason for s in lean_statuses}


def decide(child, purpose, who, decision):
    consent_decide(
        student=child, purpose=purpose, guardian=who, decision=decision, notice_version=1
    )


def test_active_then_withdrawn(child_a, purposes, parent_a):
    assert decisions_both_ways(child_a) == {"attendance": "no_consent", "gate_access": "active"}
    decide(child_a, purposes["gate_access"], parent_a, Decision.WITHDRAW)
    assert decisions_both_ways(child_a)["gate_access"] == "guardian_withdrew"


def test_second_guardian_objects_or_is_not_notified(child_a, purposes):
    link(guardian("late@example.com"), child_a, notified=False)
    assert decisions_both_ways(child_a)["gate_access"] == "guardian_not_notified"
    objector = guardian("objector@example.com")
    link(objector, child_a)
    decide(child_a, purposes["gate_access"], objector, Decision.OBJECT)
    assert decisions_both_ways(child_a)["gate_access"] == "guardian_objected"


def test_notification_exception_counts_as_notified(child_a):
    unreachable = link(guardian("gone@example.com"), child_a, notified=False)
    NotificationException.objects.create(
        guardianship=unreachable, reason=NotificationException.Reason.NOT_FOUND
    )
    assert decisions_both_ways(child_a)["gate_access"] == "active"


def test_new_notice_expiry_refusal_and_leaving(child_a, purposes, parent_a):
    grant(child_a, purposes["attendance"], parent_a)
    assert decisions_both_ways(child_a) == {"attendance": "active", "gate_access": "active"}
    later = timezone.now() + timedelta(days=child_a.school.consent_validity_days + 1)
    assert decisions_both_ways(child_a, at=later)["gate_access"] == "expired"
    notice_publish(purpose=purposes["gate_access"], text="v2", actor=TEST_ACTOR)
    assert decisions_both_ways(child_a)["gate_access"] == "notice_changed"
    child_refusal_record(student=child_a, purpose=purposes["attendance"], actor=TEST_ACTOR)
    assert decisions_both_ways(child_a)["attendance"] == "child_refused"
    student_leave(student=child_a, actor=TEST_ACTOR)
    assert set(decisions_both_ways(child_a).values()) == {"leaver"}


def test_disabled_purpose_and_unknown_student(child_a, purposes, school):
    purposes["gate_access"].enabled = False
    purposes["gate_access"].save()
    assert decisions_both_ways(child_a)["gate_access"] == "purpose_disabled"
    other = StudentFactory(school=school)
    assert decisions_both_ways(other) == {
        "attendance": "guardian_not_notified",  # no guardian at all
        "gate_access": "purpose_disabled",
    }
    unknown = uuid.uuid4()
    assert unknown != other.pk
    assert load_for_rule([unknown], rule_only=True) == {}


@pytest.mark.parametrize("ids", ["one", "two"])
def test_several_students_at_once(child_a, child_b, ids):
    wanted = [child_a.pk] if ids == "one" else [child_a.pk, child_b.pk]
    lean = load_for_rule(wanted, rule_only=True)
    assert set(lean) == set(wanted)
    for pk, student in lean.items():
        assert [s.active for s in purpose_statuses(student)] == [
            s.active for s in purpose_statuses(load_for_rule([pk])[pk])
        ]
