"""Every admin write goes through a service: it is audited, the chain holds, and the stored
consent statuses agree with the rule afterwards.

The walk covers `admin.site._registry` itself, so a new ModelAdmin (or a new action on one)
fails here until it is declared: either read-only (`READ_ONLY`), or a door whose every add,
change, delete and action is driven through the admin's HTTP views, as a superuser and as a
school admin, with the audit actions it must write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from biometrics import tasks as biometric_tasks
from biometrics.erasure import erasure_open
from biometrics.models import (
    ErasureRequest,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
    RetentionRun,
)
from biometrics.services import holder_create, holder_delete
from consent.audit import audit_verify
from consent.models import (
    AuditEvent,
    ConsentDecision,
    Guardian,
    NoticeDelivery,
    Notification,
    NotificationException,
    Purpose,
    School,
    StaffMembership,
    Student,
)
from consent.services import (
    ConsentError,
    guardianship_link,
    notice_publish,
    notification_exception_record,
    notification_record,
    purpose_create,
    purpose_update,
    staff_membership_create,
)
from consent.status import consent_status_check
from portal.auth import api_key_create
from portal.campaigns import campaign_create
from portal.models import ApiKey, ConsentCampaign, Export

from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, guardian, link
from .factories import purpose_with_notice as make_purpose
from .test_admin import staff_user
from .test_consent_status import page_form

# Models whose admin never writes (records, biometric data, schedules), and the actions that
# only read on any admin.
READ_ONLY = {
    ConsentDecision,
    AuditEvent,
    NoticeDelivery,
    Photo,
    FaceTemplate,
    RecognitionEvent,
    RetentionRun,
    Export,
    PeriodicTask,
    ClockedSchedule,
    CrontabSchedule,
    SolarSchedule,
    IntervalSchedule,
}
READING_ACTIONS = {AuditEvent: {"verify_chain"}, Holder: {"test_connection"}}


class World:
    """One school with two enabled purposes and Parent A's child (granted, notified), plus
    whatever a door's operation needs, made through the services when first asked for."""

    def __init__(self, school, purposes, child_a, parent_a, django_user_model):
        self.school = school
        self.purposes = purposes
        self.child = child_a
        self.parent = parent_a
        self.users = django_user_model

    @cached_property
    def link(self):
        return self.child.guardianships.get(guardian=self.parent)

    @cached_property
    def notification(self):
        return Notification.objects.get(guardianship=self.link)

    @cached_property
    def letter(self):
        return notification_record(
            guardianship=self.link, sent_at=timezone.now(), method="letter", actor=TEST_ACTOR
        )

    @cached_property
    def exception(self):
        spare = guardian("excused@example.com")
        row = link(spare, self.child, notified=False)
        return notification_exception_record(guardianship=row, reason="not_found", actor=TEST_ACTOR)

    @cached_property
    def pupil(self):
        """A child of 13: old enough for their own page at the default competence age."""
        born = timezone.localdate().replace(year=timezone.localdate().year - 13, day=1)
        child = StudentFactory(school=self.school, name="Pupil", date_of_birth=born)
        link(self.parent, child)
        return child

    @cached_property
    def spare_guardian(self):
        spare = guardian("spare@example.com", "Spare Parent")
        link(spare, self.child)
        return spare

    @cached_property
    def spare_purpose(self):
        return make_purpose(self.school, "library", enabled=False)

    @cached_property
    def empty_school(self):
        return SchoolFactory(slug="empty", name="Empty School")

    @cached_property
    def holder(self):
        return holder_create(
            school=self.school,
            name="Gate controller",
            base_url="http://127.0.0.1:9",
            secret="first-secret-value",
            actor=TEST_ACTOR,
        )

    @cached_property
    def erasure(self):
        return erasure_open(
            student=StudentFactory(school=self.school), trigger="staff", actor=TEST_ACTOR
        )

    @cached_property
    def erasure_of_a_removed_holder(self):
        """An erasure whose holder was removed from the configuration before it answered."""
        gone = holder_create(
            school=self.school,
            name="Old gate",
            base_url="http://127.0.0.1:9",
            secret="old-gate-secret",
            actor=TEST_ACTOR,
        )
        erasure = erasure_open(
            student=StudentFactory(school=self.school), trigger="staff", actor=TEST_ACTOR
        )
        holder_delete(holder=gone, actor=TEST_ACTOR)
        return erasure

    @cached_property
    def api_key(self):
        return api_key_create(school=self.school, scopes=["roster"], actor=TEST_ACTOR)[0]

    @cached_property
    def campaign(self):
        return campaign_create(
            school=self.school, purpose=self.purposes["gate_access"], actor=TEST_ACTOR
        )

    @cached_property
    def staff(self):
        return self.users.objects.create_user("member", password="pw", is_staff=True)

    @cached_property
    def membership(self):
        return staff_membership_create(user=self.staff, school=self.school, actor=TEST_ACTOR)

    @cached_property
    def spare_user(self):
        return self.users.objects.create_user("spare", password="pw")

    @cached_property
    def spare_group(self):
        return Group.objects.create(name="Spare group")


@dataclass(frozen=True)
class Op:
    """One way to write through an admin: `kind` is add, change, delete or an action's name.
    `build` gives the object(s) acted on and the form values to post. `audit` is what it must
    write; `superuser` / `school_admin` say who may (the others get 403 or 404 and nothing
    is written). `answers`: the status of the allowed write (an action that answers with a page
    to print, not a redirect, is 200)."""

    kind: str
    audit: tuple[str, ...]
    build: Callable[[World], tuple[Any, dict]]
    superuser: bool = True
    school_admin: bool = False
    answers: int = 302


def inline(prefix: str, total: int, **rows: str) -> dict:
    return {f"{prefix}-TOTAL_FORMS": str(total), **{f"{prefix}-{k}": v for k, v in rows.items()}}


SENT_AT = {"sent_at_0": "2025-09-01", "sent_at_1": "09:00:00"}

DOORS: dict[type, list[Op]] = {
    School: [
        Op(
            "add",
            ("school.created",),
            lambda w: (None, {"name": "New School", "slug": "new-school"}),
        ),
        Op(
            "change",
            ("school.policy_changed",),
            lambda w: (w.school, {"event_window_days": "20", "dpo_name": "New DPO"}),
            school_admin=True,
        ),
        Op("delete", ("school.deleted",), lambda w: (w.empty_school, {})),
        Op("delete_selected", ("school.deleted",), lambda w: ([w.empty_school], {})),
    ],
    Purpose: [
        Op(
            "add",
            ("consent.purpose_created", "consent.notice_published"),
            lambda w: (
                None,
                {
                    "school": w.school.pk,
                    "code": "library",
                    "name": "Library",
                    "alternative": "A library card.",
                    "dpia_reference": "DPIA-9",
                    **inline("notices", 1, **{"0-text": "Library notice v1"}),
                },
            ),
            school_admin=True,
        ),
        Op(
            "change",
            ("consent.purpose_changed", "consent.notice_published"),
            lambda w: (
                w.purposes["gate_access"],
                {"name": "Gates", **inline("notices", 2, **{"1-text": "Gate notice v2"})},
            ),
            school_admin=True,
        ),
        Op("delete", ("consent.purpose_deleted",), lambda w: (w.spare_purpose, {})),
        Op("delete_selected", ("consent.purpose_deleted",), lambda w: ([w.spare_purpose], {})),
        # DPOs only (neither walker is one): tests/test_governance.py drives it as a DPO.
        Op(
            "sign_off_dpia",
            ("consent.dpia_signed_off",),
            lambda w: ([w.spare_purpose], {}),
            superuser=False,
        ),
    ],
    Student: [
        Op(
            "add",
            ("roster.student_created", "roster.guardian_linked"),
            lambda w: (
                None,
                {
                    "school": w.school.pk,
                    "external_id": "NEW-1",
                    "name": "New Child",
                    "class_name": "Year 1",
                    **inline(
                        "guardianships",
                        1,
                        **{"0-guardian": str(w.parent.pk), "0-parental_responsibility": "on"},
                    ),
                },
            ),
            school_admin=True,
        ),
        Op(
            "change",
            ("roster.student_changed", "roster.guardianship_changed"),
            lambda w: (w.child, {"name": "Child A2", "guardianships-0-relationship": "mother"}),
            school_admin=True,
        ),
        Op(  # the guardians inline, deleting a link (superusers: school admins cannot)
            "change",
            ("roster.guardian_unlinked",),
            lambda w: (w.child, {"guardianships-0-DELETE": "on"}),
        ),
        Op("delete", (), lambda w: (w.child, {}), superuser=False),  # leave + erasure instead
        Op(
            "record_child_refusal",
            ("consent.child_refusal",),
            lambda w: ([w.child], {}),
            school_admin=True,
        ),
        Op(  # a sheet of one-time sign-in links with QR codes, to print
            "print_child_links",
            ("auth.child_link_issued",),
            lambda w: ([w.pupil], {}),
            school_admin=True,
            answers=200,
        ),
    ],
    Guardian: [
        Op(  # a guardian is added to a child (an existing address is linked as it is)
            "add",
            ("roster.guardian_created", "roster.guardian_linked"),
            lambda w: (
                None,
                {
                    "email": "new.parent@example.com",
                    "name": "New",
                    "language": "en",
                    "student": str(w.child.pk),
                    "parental_responsibility": "on",
                },
            ),
            school_admin=True,
        ),
        Op(
            "change",
            ("roster.guardian_changed",),
            lambda w: (w.parent, {"name": "Parent A2", "language": "zh-hans"}),
            school_admin=True,
        ),
        Op("delete", ("roster.guardian_deleted",), lambda w: (w.spare_guardian, {})),
        Op("delete_selected", ("roster.guardian_deleted",), lambda w: ([w.spare_guardian], {})),
    ],
    StaffMembership: [
        Op(
            "add",
            ("staff.membership_added",),
            lambda w: (None, {"user": w.staff.pk, "school": w.school.pk, "role": "dpo"}),
        ),
        Op("change", ("staff.membership_changed",), lambda w: (w.membership, {"role": "dpo"})),
        Op("delete", ("staff.membership_removed",), lambda w: (w.membership, {})),
        Op("delete_selected", ("staff.membership_removed",), lambda w: ([w.membership], {})),
    ],
    Notification: [
        Op(
            "add",
            ("consent.notification_recorded",),
            lambda w: (None, {"guardianship": w.link.pk, "method": "letter", **SENT_AT}),
            school_admin=True,
        ),
        Op(
            "change",
            ("consent.notification_changed",),
            lambda w: (w.letter, {"note": "Handed over at the gate"}),
        ),
        # An accepted email's record is the delivery's proof: nobody edits it.
        Op("change", (), lambda w: (w.notification, {"note": "x"}), superuser=False),
        Op("delete", ("consent.notification_deleted",), lambda w: (w.notification, {})),
        Op(
            "delete_selected",
            ("consent.notification_deleted",),
            lambda w: ([w.notification], {}),
        ),
    ],
    NotificationException: [
        Op(
            "add",
            ("consent.notification_exception_recorded",),
            lambda w: (None, {"guardianship": w.link.pk, "reason": "welfare", "note": "Order"}),
            school_admin=True,
        ),
        Op(
            "change",
            ("consent.notification_exception_changed",),
            lambda w: (w.exception, {"reason": "lacks_capacity"}),
        ),
        Op("delete", ("consent.notification_exception_deleted",), lambda w: (w.exception, {})),
        Op(
            "delete_selected",
            ("consent.notification_exception_deleted",),
            lambda w: ([w.exception], {}),
        ),
    ],
    Holder: [
        Op(
            "add",
            ("biometrics.holder_added",),
            lambda w: (
                None,
                {
                    "school": w.school.pk,
                    "name": "Till",
                    "base_url": "http://127.0.0.1:9",
                    "secret": "till-secret-value",
                    "enabled": "on",
                    "receives_templates": "on",
                },
            ),
            school_admin=True,
        ),
        Op(
            "change",
            ("biometrics.holder_changed",),
            lambda w: (w.holder, {"secret": "second-secret-value", "enabled": ""}),
            school_admin=True,
        ),
        Op("delete", ("biometrics.holder_removed",), lambda w: (w.holder, {})),
        Op("delete_selected", ("biometrics.holder_removed",), lambda w: ([w.holder], {})),
    ],
    ErasureRequest: [
        Op("add", (), lambda w: (None, {}), superuser=False),
        Op("change", (), lambda w: (w.erasure, {}), superuser=False),
        Op("delete", (), lambda w: (w.erasure, {}), superuser=False),
        Op("retry_now", ("erasure.retried",), lambda w: ([w.erasure], {}), school_admin=True),
        # Only a DPO (or a superuser): a school admin is not offered it.
        Op(
            "confirm_manually",
            ("erasure.confirmed_manually",),
            lambda w: (
                [w.erasure_of_a_removed_holder],
                {"evidence": "The vendor's deletion certificate of 1 December"},
            ),
        ),
    ],
    ConsentCampaign: [
        Op(
            "add",
            ("consent.campaign_sent",),
            lambda w: (
                None,
                {"school": w.school.pk, "purpose": w.purposes["gate_access"].pk},
            ),
            school_admin=True,
        ),
        Op("change", (), lambda w: (w.campaign, {"class_name": "Year 2"}), superuser=False),
        Op("delete", ("consent.campaign_deleted",), lambda w: (w.campaign, {})),
        Op("delete_selected", ("consent.campaign_deleted",), lambda w: ([w.campaign], {})),
    ],
    ApiKey: [
        Op("add", (), lambda w: (None, {"name": "x"}), superuser=False),
        Op("change", (), lambda w: (w.api_key, {"name": "x"}), superuser=False),
        Op("delete", (), lambda w: (w.api_key, {}), superuser=False),
        Op("revoke", ("auth.api_key_revoked",), lambda w: ([w.api_key], {})),
    ],
    User: [
        Op(
            "add",
            ("admin.user_added",),
            lambda w: (
                None,
                {
                    "username": "newstaff",
                    "usable_password": "true",
                    "password1": "a-long-pass-phrase-9",
                    "password2": "a-long-pass-phrase-9",
                },
            ),
        ),
        Op("change", ("admin.user_changed",), lambda w: (w.spare_user, {"first_name": "Sam"})),
        Op("delete", ("admin.user_deleted",), lambda w: (w.spare_user, {})),
        Op("delete_selected", ("admin.user_deleted",), lambda w: ([w.spare_user], {})),
    ],
    Group: [
        Op("add", ("admin.group_added",), lambda w: (None, {"name": "Helpers"})),
        Op("change", ("admin.group_changed",), lambda w: (w.spare_group, {"name": "Others"})),
        Op("delete", ("admin.group_deleted",), lambda w: (w.spare_group, {})),
        Op("delete_selected", ("admin.group_deleted",), lambda w: ([w.spare_group], {})),
    ],
}

SECRETS = ("first-secret-value", "till-secret-value", "second-secret-value", "old-gate-secret")


def as_user(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def model_admin(model):
    return admin.site._registry[model]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def errors(response) -> str:
    return " | ".join(
        re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode())
    )


@pytest.fixture
def world(school, purposes, child_a, parent_a, django_user_model):
    return World(school, purposes, child_a, parent_a, django_user_model)


@pytest.fixture
def users(admin_user, django_user_model, school):
    return {"superuser": admin_user, "school_admin": staff_user(django_user_model, school)}


def test_every_registered_admin_is_a_door_or_read_only(admin_user):
    registered = set(admin.site._registry)
    assert registered == set(DOORS) | READ_ONLY, registered ^ (set(DOORS) | READ_ONLY)
    assert not set(DOORS) & READ_ONLY
    request = as_user(admin_user)
    for model, ops in DOORS.items():
        kinds = {op.kind for op in ops}
        assert {"add", "change", "delete"} <= kinds, model  # each said allowed or refused
        declared = kinds - {"add", "change", "delete"}
        reading = READING_ACTIONS.get(model, set())
        ma = model_admin(model)
        # Every action the admin has (whoever may run it) is declared; the superuser is
        # offered those declared for superusers (a DPO-only action is not).
        own = {name for _, name, _ in ma._get_base_actions()} - reading - {"delete_selected"}
        assert own == declared - {"delete_selected"}, model
        offered = {op.kind for op in ops if op.superuser} & declared
        assert set(ma.get_actions(request)) - reading == offered, model


@pytest.mark.parametrize("model", sorted(READ_ONLY, key=str), ids=lambda m: m._meta.label)
def test_read_only_admins_write_nothing(model, users, client, world):
    world.holder  # noqa: B018 - something for a reading action to run on
    for who in ("school_admin", "superuser"):  # the superuser last, for the pages below
        user = users[who]
        ma, request = model_admin(model), as_user(user)
        assert not ma.has_add_permission(request), (model, who)
        assert not ma.has_change_permission(request), (model, who)
        assert not ma.has_delete_permission(request), (model, who)
        assert set(ma.get_actions(request)) <= READING_ACTIONS.get(model, set()), (model, who)
        client.force_login(user)
        assert client.post(url(model, "add"), {}).status_code == 403
    # Superusers still see them (a schedule's page renders read-only).
    assert client.get(url(model, "changelist")).status_code == 200
    if (obj := model.objects.first()) is not None:
        assert client.get(url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(
    ("model", "action"),
    [(m, a) for m, names in READING_ACTIONS.items() for a in sorted(names)],
    ids=lambda v: getattr(getattr(v, "_meta", None), "label", v),
)
def test_reading_actions_write_nothing(model, action, admin_client, world):
    world.holder  # noqa: B018
    objects = model.objects.all()
    mark = last_event_id()
    r = admin_client.post(
        url(model, "changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects]},
    )
    assert r.status_code == 302
    assert not AuditEvent.objects.filter(pk__gt=mark).exists()


def door_cases():
    for model, ops in DOORS.items():
        for index, op in enumerate(ops):
            for who in ("superuser", "school_admin"):
                yield pytest.param(
                    model, index, who, id=f"{model._meta.label}-{op.kind}{index}-{who}"
                )


@pytest.mark.parametrize(("model", "index", "who"), list(door_cases()))
def test_every_admin_write_is_audited_and_keeps_statuses_right(
    model, index, who, users, client, world, monkeypatch
):
    op = DOORS[model][index]
    queued = []
    monkeypatch.setattr(biometric_tasks.erasure_step_task, "delay", queued.append)
    target, values = op.build(world)
    assert audit_verify().ok and consent_status_check().drift == []  # clean to start with
    client.force_login(users[who])
    mark = last_event_id()

    if op.kind in ("add", "change"):
        page = url(model, op.kind, *([target.pk] if target is not None else []))
        got = client.get(page)
        data = page_form(client, page) if got.status_code == 200 else {}
        r = client.post(page, {**data, **values})
    elif op.kind == "delete":
        r = client.post(url(model, "delete", target.pk), {"post": "yes"})
    else:
        r = client.post(
            url(model, "changelist"),
            {
                "action": op.kind,
                "_selected_action": [o.pk for o in target],
                "post": "yes",
                **values,
            },
        )

    written = list(AuditEvent.objects.filter(pk__gt=mark).order_by("pk"))
    allowed = op.superuser if who == "superuser" else op.school_admin
    if not allowed:
        assert r.status_code in (200, 302, 403, 404), r.status_code
        assert written == [], [e.action for e in written]
        if op.kind not in ("add", "change", "delete"):  # an action this user is not offered
            assert op.kind not in model_admin(model).get_actions(as_user(users[who]))
        return
    assert r.status_code == op.answers, (r.status_code, errors(r))
    assert set(op.audit) <= {e.action for e in written}, [e.action for e in written]
    assert all(e.actor_kind == "staff" for e in written if e.action in op.audit)
    assert audit_verify().ok
    assert consent_status_check().drift == []
    trail = json.dumps([e.data for e in AuditEvent.objects.all()])
    assert not any(secret in trail for secret in SECRETS)
    if op.kind in ("delete", "delete_selected"):
        gone = target if op.kind == "delete" else target[0]
        assert not model.objects.filter(pk=gone.pk).exists()


# --- Refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("notice", "It has no notice."),
        ("alternative", "It does not describe the non-biometric alternative."),
        ("dpia_reference", "It has no DPIA reference."),
    ],
)
def test_enabling_a_purpose_without_its_prerequisites_is_refused(
    missing, message, school, child_a, users, client
):
    purpose = purpose_create(
        school=school,
        code="library",
        name="Library",
        alternative="" if missing == "alternative" else "A card.",
        dpia_reference="" if missing == "dpia_reference" else "DPIA-1",
        actor=TEST_ACTOR,
    )
    if missing != "notice":
        notice_publish(purpose=purpose, text="Library notice", actor=TEST_ACTOR)
    mark = last_event_id()

    # The service refuses, whoever calls it.
    with pytest.raises(ConsentError) as refused:
        purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    assert refused.value.code == "purpose_not_ready" and message in refused.value.detail

    # The admin form says why, and nothing changes.
    for user in users.values():
        client.force_login(user)
        page = url(Purpose, "change", purpose.pk)
        r = client.post(page, {**page_form(client, page), "enabled": "on"})
        assert r.status_code == 200 and message in r.content.decode()
    purpose.refresh_from_db()
    assert not purpose.enabled
    assert not AuditEvent.objects.filter(pk__gt=mark).exists()
    assert consent_status_check().drift == []


def test_a_ready_purpose_is_enabled_from_admin_with_its_audit_row(school, child_a, admin_client):
    purpose = make_purpose(school, "library", enabled=False)
    mark = last_event_id()
    page = url(Purpose, "change", purpose.pk)
    r = admin_client.post(page, {**page_form(admin_client, page), "enabled": "on"})
    assert r.status_code == 302
    purpose.refresh_from_db()
    assert purpose.enabled
    event = AuditEvent.objects.get(action="consent.purpose_enabled", pk__gt=mark)
    assert event.data["changes"] == {"enabled": [False, True]}
    assert consent_status_check().drift == []


def test_a_policy_change_is_audited_with_before_and_after(school, admin_client):
    page = url(School, "change", school.pk)
    data = {**page_form(admin_client, page), "consent_validity_days": "200", "dpo_email": ""}
    assert admin_client.post(page, data).status_code == 302
    event = AuditEvent.objects.filter(action="school.policy_changed").get()
    assert event.data["changes"] == {
        "consent_validity_days": [365, 200],
        "dpo_email": ["dpo@test-school.example", ""],
    }


def test_a_password_change_from_admin_is_audited(admin_client, django_user_model):
    staff = django_user_model.objects.create_user("dana", password="old-pass-phrase-1")
    r = admin_client.post(
        reverse("admin:auth_user_password_change", args=[staff.pk]),
        {"password1": "new-pass-phrase-22", "password2": "new-pass-phrase-22"},
    )
    assert r.status_code == 302
    event = AuditEvent.objects.get(action="admin.user_password_changed")
    assert event.data == {"id": staff.pk, "fields": []}
    assert "new-pass-phrase" not in json.dumps(event.data)


def test_school_staff_cannot_reach_accounts_or_schedules(client, users):
    client.force_login(users["school_admin"])
    for model in (User, Group, PeriodicTask, StaffMembership, ApiKey):
        assert client.get(url(model, "changelist")).status_code == 403, model


def test_a_guardian_linked_in_admin_is_sent_the_notice_not_marked_notified(
    school, purposes, admin_client, sent_jobs, django_capture_on_commit_callbacks
):
    """The inline links a guardian as the form says and queues the school's notice; the
    guardian counts as notified only once the mail server accepted it (tests/test_notices.py)."""
    late = guardian("late@example.com")
    child = StudentFactory(school=school)
    page = url(Student, "change", child.pk)
    data = {
        **page_form(admin_client, page),
        **inline("guardianships", 1, **{"0-guardian": str(late.pk)}),
        "guardianships-0-parental_responsibility": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(page, data).status_code == 302
    assert not Notification.objects.filter(guardianship__guardian=late).exists()
    (delivery,) = NoticeDelivery.objects.filter(guardianship__guardian=late)
    assert sent_jobs == [("consent.tasks.notice_send_task", [delivery.pk])]
    guardianship_link(guardian=late, student=child, actor=TEST_ACTOR)  # joins: no second notice
    assert NoticeDelivery.objects.filter(guardianship__guardian=late).count() == 1


def test_retry_now_redrives_the_erasure_through_its_service(world, client, users, monkeypatch):
    queued = []
    monkeypatch.setattr(biometric_tasks.erasure_step_task, "delay", queued.append)
    erasure = world.erasure
    client.force_login(users["school_admin"])
    r = client.post(
        url(ErasureRequest, "changelist"),
        {"action": "retry_now", "_selected_action": [erasure.pk]},
        follow=True,
    )
    # The runnable steps were queued again, as before (the stub keeps them off the broker).
    message = re.search(r"Queued (\d+) step\(s\) again\.", r.content.decode())
    assert message and int(message.group(1)) >= 1
    event = AuditEvent.objects.get(action="erasure.retried")
    assert event.subject == str(erasure.subject_id)
    assert event.data == {"erasure": str(erasure.pk), "steps": erasure.steps.count()}
