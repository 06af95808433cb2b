"""One rule for when data must go (biometrics/due.py), seen from outside, day by day.

Every case below runs at once, in its own school, through the same days. Each day the clock is
moved to that day, the case's action (a withdrawal, a new notice...) is taken, then every
retention job runs together (`manage.py enforce_retention --as-of DAY`: leavers, template age,
events, consents, reconciliation, the watchdog, exports) and the erasures they opened are run
to the end. Then, for each case, what the portal and its holder hold and what the parent's page
says (the destroy-by date and its rule) must be what the table says for that day; on a day with
an action, already before any job ran (what is due "now" is done by the decision path itself).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import TestCase

from biometrics.due import EVENTS, EVERYTHING, erasure_due
from biometrics.erasure import OPEN, erasure_step_run
from biometrics.models import ErasureRequest, FaceTemplate, Holder, RecognitionEvent
from biometrics.selectors import held_data
from consent.models import Decision, Purpose, School, Student
from consent.services import (
    child_refusal_record,
    consent_decide,
    notice_publish,
    purpose_disable,
    school_create,
    student_leave,
)

from .factories import TEST_ACTOR, StudentFactory, grant, guardian, link, purpose_with_notice
from .processes import start_holders

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
DAYS = 27
POLICY = {
    "consent_validity_days": 365,
    "leaver_window_days": 20,
    "reconsent_window_days": 10,
    "event_window_days": 90,
}
GATE, ATTENDANCE = "gate_access", "attendance"


class Held(NamedTuple):
    templates: int
    events: dict  # purpose code → count
    holder: bool | None  # the holder's copy (None: the case has no holder)


class Page(NamedTuple):
    destroy_by: int | None  # the day; None: "now" (the moment the page is read)
    rule: str  # how the rule starts


@dataclass
class World:
    case: Case
    school: School
    purposes: dict[str, Purpose]
    child: Student
    parents: tuple
    holder: object = None


@dataclass
class Case:
    name: str
    actions: dict[int, Callable[[World], None]]
    timeline: list[tuple[int, Held, Page]]  # from that day on, until the next row
    purposes: tuple[str, ...] = (GATE,)
    policy: dict = field(default_factory=dict)
    holder: bool = False
    born: date | None = None  # the child's date of birth

    def expected(self, day: int) -> tuple[Held, Page]:
        held, page = next((h, p) for first, h, p in reversed(self.timeline) if first <= day)
        if self.holder is False:
            held = held._replace(holder=None)
        return held, page


def kept(*codes, templates=1, holder=True, **counts) -> Held:
    return Held(templates, {**dict.fromkeys(codes, 1), **counts}, holder)


GONE = Held(0, {}, False)
NOW = Page(None, "now: no purpose is active")
EXPIRY = Page(365, "when the last consent given ends")


# --- actions ----------------------------------------------------------------------------------


def decide(decision: str, parent: int = 0, code: str = GATE) -> Callable[[World], None]:
    def act(w: World) -> None:
        purpose = w.purposes[code]
        consent_decide(
            student=w.child,
            purpose=purpose,
            guardian=w.parents[parent],
            decision=decision,
            notice_version=purpose.notices.order_by("-version").first().version,
        )

    return act


def child_refuses(w: World) -> None:
    child_refusal_record(student=w.child, actor=TEST_ACTOR, note="said no at the gate")


def leaves(w: World) -> None:
    student_leave(student=w.child, actor=TEST_ACTOR)


def new_notice(w: World) -> None:
    notice_publish(
        purpose=w.purposes[GATE], text="Notice v2: now also at the side gate", actor=TEST_ACTOR
    )


def disable(code: str) -> Callable[[World], None]:
    return lambda w: purpose_disable(purpose=w.purposes[code], actor=TEST_ACTOR)


def recognised(w: World) -> None:
    RecognitionEvent.objects.create(
        student=w.child, purpose=w.purposes[GATE], device="gate", distance=0.3, at=now()
    )


def student_says_yes(w: World) -> None:
    from consent.services import student_decide

    purpose = w.purposes[GATE]
    student_decide(
        student=w.child,
        purpose=purpose,
        decision=Decision.GRANT,
        notice_version=purpose.notices.order_by("-version").first().version,
    )


def now() -> datetime:
    from django.utils import timezone

    return timezone.now()


# --- the table --------------------------------------------------------------------------------

CASES = [
    Case(
        "withdrawal",
        {3: decide(Decision.WITHDRAW)},
        [(0, kept(GATE), EXPIRY), (3, GONE, NOW)],
        holder=True,
    ),
    Case(
        "objection",  # the other parent objects: any one parent's no wins
        {3: decide(Decision.OBJECT, parent=1)},
        [(0, kept(GATE), EXPIRY), (3, GONE, NOW)],
    ),
    Case("child_refusal", {3: child_refuses}, [(0, kept(GATE), EXPIRY), (3, GONE, NOW)]),
    Case(
        "leaver",  # matching stops at once; the holder keeps its copy through the window too
        {3: leaves},
        [
            (0, kept(GATE), EXPIRY),
            (3, kept(GATE), Page(23, "20 days after leaving the school")),
            (23, GONE, Page(23, "20 days after leaving the school")),
        ],
        holder=True,
    ),
    Case(
        "new_notice",
        {5: new_notice},
        [
            (0, kept(GATE), EXPIRY),
            (5, kept(GATE), Page(15, "10 days after the notice changed")),
            (15, GONE, Page(15, "10 days after the notice changed")),
        ],
        holder=True,
    ),
    Case(
        "new_notice_granted_again",
        {5: new_notice, 8: decide(Decision.GRANT)},
        [
            (0, kept(GATE), EXPIRY),
            (5, kept(GATE), Page(15, "10 days after the notice changed")),
            (8, kept(GATE), Page(8 + 365, "when the last consent given ends")),
        ],
        holder=True,
    ),
    Case(
        "purpose_disabled_another_active",  # its events go now, the templates stay
        {4: disable(ATTENDANCE)},
        [(0, kept(GATE, ATTENDANCE), EXPIRY), (4, kept(GATE), EXPIRY)],
        purposes=(GATE, ATTENDANCE),
    ),
    Case(
        "purpose_disabled_the_only_one",
        {4: disable(GATE)},
        [(0, kept(GATE), EXPIRY), (4, GONE, NOW)],
    ),
    Case(
        "expiry",
        {},
        [(0, kept(GATE), Page(20, "when the last consent given ends")), (20, GONE, NOW)],
        policy={"consent_validity_days": 20},
    ),
    Case(
        "template_age",  # counted from the last recognition
        {5: recognised},
        [
            (0, kept(GATE), Page(12, "12 days after the last recognition or enrolment")),
            (5, kept(gate_access=2), Page(17, "12 days after the last recognition")),
            (17, Held(0, {}, False), EXPIRY),  # consent still stands; the data is gone
        ],
        policy={"template_max_age_days": 12},
    ),
    Case(
        "event_window",
        {4: recognised},
        [
            (0, kept(GATE), EXPIRY),
            (4, kept(gate_access=2), EXPIRY),
            (7, kept(GATE), EXPIRY),
            (11, kept(), EXPIRY),
        ],
        policy={"event_window_days": 7},
    ),
]


# The child turns 18 on day 4 (at midnight, London time: UTC in March).
EIGHTEEN_ON_DAY_4 = date(2013, 3, 7)
ADULT_WINDOW = Page(14, "10 days after the 18th birthday")
CASES += [
    Case(  # parents' consent stops counting; the data waits the window for the student's own
        "adult_without_own_consent",
        {},
        [(0, kept(GATE), ADULT_WINDOW), (14, GONE, ADULT_WINDOW)],
        holder=True,
        born=EIGHTEEN_ON_DAY_4,
    ),
    Case(
        "adult_gives_own_consent",
        {6: student_says_yes},
        [(0, kept(GATE), ADULT_WINDOW), (6, kept(GATE), Page(6 + 365, "when the last consent"))],
        born=EIGHTEEN_ON_DAY_4,
    ),
]


# --- the run ----------------------------------------------------------------------------------


def build(case: Case, holder_proc) -> World:
    school = school_create(
        slug=case.name.replace("_", "-"),
        name=case.name,
        dpo_email="dpo@example.com",
        actor=TEST_ACTOR,
        **{**POLICY, **case.policy},
    )
    purposes = {code: purpose_with_notice(school, code) for code in case.purposes}
    parents = tuple(guardian(f"{who}.{case.name}@example.com") for who in ("a", "b"))
    child = StudentFactory(school=school, date_of_birth=case.born)
    for parent in parents:
        link(parent, child)
    for purpose in purposes.values():
        grant(child, purpose, parents[0])
    template = FaceTemplate.objects.create(student=child, ciphertext=b"sealed")
    for purpose in purposes.values():
        RecognitionEvent.objects.create(
            student=child, purpose=purpose, device="gate", distance=0.3, at=now()
        )
    world = World(case, school, purposes, child, parents)
    if case.holder:
        Holder.objects.create(
            school=school,
            name="Gate",
            base_url=holder_proc.info["url"],
            secret=holder_proc.info["secret"],
        )
        world.holder = holder_proc.info["client"]
        world.holder.put_template(str(child.subject_id), str(template.pk), [0.1] * 128, "m")
    return world


def held(w: World) -> Held:
    events = Counter(
        RecognitionEvent.objects.filter(student=w.child).values_list("purpose__code", flat=True)
    )
    copy = None if w.holder is None else w.holder.get_subject(str(w.child.subject_id)) is not None
    return Held(FaceTemplate.objects.filter(student=w.child).count(), dict(events), copy)


def page(w: World) -> Page:
    from django.utils import timezone

    retention = held_data(w.child)["retention"]
    offset = retention["destroy_by"] - T0
    if offset != timedelta(days=offset.days):
        # A birthday's window ends at local midnight: the first run after it is that day's.
        assert timezone.localtime(retention["destroy_by"]).time() == time(0), retention
        return Page(offset.days + 1, retention["rule"])
    return Page(offset.days, retention["rule"])  # a day of the run, at 09:00


def erasures_run() -> None:
    """What the workers would do with every erasure opened: each step, the key last."""
    for erasure in ErasureRequest.objects.filter(status__in=OPEN):
        with TestCase.captureOnCommitCallbacks(execute=True):
            for step in erasure.steps.exclude(kind="key"):
                erasure_step_run(step_id=step.pk)
            for step in erasure.steps.filter(kind="key"):
                erasure_step_run(step_id=step.pk)
        erasure.refresh_from_db()
        assert erasure.status == "verified", erasure.steps.values("system", "last_error")


def mismatch(w: World, day: int, when: str) -> str | None:
    want_held, want_page = w.case.expected(day)
    if want_page.destroy_by is None:  # "now": the moment the page is read
        want_page = want_page._replace(destroy_by=day)
    got_held, got_page = held(w), page(w)
    if (
        got_held == want_held
        and got_page.destroy_by == want_page.destroy_by
        and (got_page.rule.startswith(want_page.rule))
    ):
        return None
    return f"{w.case.name}, day {day}, {when}: held {got_held}, page {got_page}; " + (
        f"wanted {want_held}, {want_page}"
    )


@pytest.fixture(scope="module")
def holder_procs(tmp_path_factory):
    """One reference holder per case that has one (a holder reconciles one school)."""
    procs = start_holders({c.name: tmp_path_factory.mktemp(c.name) for c in CASES if c.holder})
    yield procs
    for proc in procs.values():
        proc.stop()


def test_every_case_day_by_day_with_every_job(db, holder_procs, sent_jobs):
    wrong: list[str] = []
    with mock.patch("django.utils.timezone.now", return_value=T0):
        worlds = [build(case, holder_procs.get(case.name)) for case in CASES]
    for day in range(DAYS):
        today = T0 + timedelta(days=day)
        with mock.patch("django.utils.timezone.now", return_value=today):
            acted = [w for w in worlds if day in w.case.actions]
            for w in acted:
                with TestCase.captureOnCommitCallbacks(execute=True):
                    w.case.actions[day](w)
            erasures_run()
            wrong += filter(None, (mismatch(w, day, "after the action") for w in acted))
            with TestCase.captureOnCommitCallbacks(execute=True):
                call_command(
                    "enforce_retention", "--as-of", today.isoformat(), stdout=io.StringIO()
                )
            erasures_run()
            wrong += filter(None, (mismatch(w, day, "after the jobs") for w in worlds))
    assert not wrong, "\n".join(wrong)


def test_the_page_and_the_jobs_read_the_same_answer(child_a, purposes):
    """A leaver's dues: everything at the end of the window, nothing before; the page's date is
    that due's."""
    left = now()
    student_leave(student=child_a, actor=TEST_ACTOR, at=left)
    window = timedelta(days=child_a.school.leaver_window_days)
    (everything,) = [d for d in erasure_due(child_a, at=left) if d.what == EVERYTHING]
    assert (everything.by, everything.reason, everything.trigger) == (
        left + window,
        "leaver",
        "leaver",
    )
    assert not everything.is_due(left + window - timedelta(seconds=1))
    assert everything.is_due(left + window)
    assert held_data(child_a)["retention"]["destroy_by"] == left + window
    assert not [d for d in erasure_due(child_a, at=left) if d.what == EVENTS]


def test_disabling_a_purpose_by_any_door_erases_its_events_at_once(
    school, purposes, parent_a, monkeypatch
):
    """The admin changes a purpose through `purpose_update`: switching it off announces, to
    every child it was active for (a chunk at a time), what ended."""
    from consent.services import purpose_update
    from consent.services import schools as school_services

    monkeypatch.setattr(school_services, "ANNOUNCE_CHUNK", 2)
    children = []
    for _ in range(3):
        child = StudentFactory(school=school)
        link(parent_a, child)
        for purpose in purposes.values():
            grant(child, purpose, parent_a)
            RecognitionEvent.objects.create(
                student=child, purpose=purpose, device="gate", distance=0.3, at=now()
            )
        FaceTemplate.objects.create(student=child, ciphertext=b"sealed")
        children.append(child)
    purpose_update(purpose=purposes[ATTENDANCE], enabled=False, actor=TEST_ACTOR)
    assert set(RecognitionEvent.objects.values_list("purpose__code", flat=True)) == {GATE}
    assert RecognitionEvent.objects.count() == 3
    assert FaceTemplate.objects.count() == 3  # gate access is still in use
    assert not ErasureRequest.objects.exists()
    purpose_update(purpose=purposes[GATE], enabled=False, actor=TEST_ACTOR)
    assert ErasureRequest.objects.filter(trigger="consent_lost").count() == 3


def test_the_transparency_page_publishes_the_windows_the_jobs_apply(client, school):
    from consent.services import school_policy_update

    school_policy_update(
        school=school, actor=TEST_ACTOR, reconsent_window_days=7, leaver_window_days=12
    )
    body = client.get(f"/schools/{school.slug}/").content.decode()
    assert "the data is erased 7 days later unless a parent gives consent on the new notice" in body
    assert "everything is erased 12 days after leaving" in body


def test_the_re_consent_window_is_at_most_30_days(school):
    from django.core.exceptions import ValidationError

    from consent.services import school_policy_update

    with pytest.raises(ValidationError, match="30 days"):
        school_policy_update(school=school, actor=TEST_ACTOR, reconsent_window_days=31)
    school.refresh_from_db()
    assert school.reconsent_window_days == 30
