"""The child's own voice (issue 15; SPEC §2 rule 5, §8 `/me/`): a competent child signs in with
a link staff give them, sees what is held about them, says no themselves (no parent can lift
it), downloads their own package; from the 18th birthday only the student's own grant counts.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from biometrics.due import destroy_by, erasure_due
from biometrics.models import FaceTemplate, RecognitionEvent
from consent.accounts import AccountsKeptApart
from consent.ages import birthday_starts
from consent.models import AuditEvent, ConsentDecision, Decision, StaffMembership, Student
from consent.rules import purpose_statuses
from consent.services import (
    ConsentError,
    child_refusal_by_child,
    child_refusal_record,
    consent_decide,
    school_policy_update,
    student_decide,
    student_update,
)
from portal.auth import api_key_create
from portal.child_auth import child_account, child_link_issue, child_token_issue
from portal.exports import export_build
from portal.models import ChildLink, Export

from .factories import TEST_ACTOR, StudentFactory, grant, link
from .test_admin import staff_user

ME = "/me/"


def dob(years: int, *, birthday_in_days: int = 0) -> date:
    """A date of birth whose `years`th birthday is `birthday_in_days` from today (local)."""
    target = timezone.localdate() + timedelta(days=birthday_in_days)
    return target.replace(year=target.year - years)


def aged(student: Student, years: int, *, birthday_in_days: int = 0) -> Student:
    return student_update(
        student=student,
        external_id=student.external_id,
        name=student.name,
        date_of_birth=dob(years, birthday_in_days=birthday_in_days),
        class_name=student.class_name,
        actor=TEST_ACTOR,
    )


def child_web(student: Student, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(child_account(student))
    return client


def child_api(student: Student) -> APIClient:
    client = APIClient()
    token, _ = child_token_issue(student=student)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def key_client(school, scopes=("roster",)) -> APIClient:
    _, secret = api_key_create(school=school, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def statuses(student: Student, at=None) -> dict[str, tuple[bool, str]]:
    fresh = Student.objects.get(pk=student.pk)
    return {s.code: (s.active, s.reason) for s in purpose_statuses(fresh, at=at)}


@pytest.fixture
def pupil(child_a, purposes, parent_a):
    """Child A, 13, with gate access and attendance granted by Parent A."""
    grant(child_a, purposes["attendance"], parent_a)
    return aged(child_a, 13)


@pytest.fixture
def sibling(school, purposes, parent_a):
    child = StudentFactory(school=school, name="Sibling A", date_of_birth=dob(14))
    link(parent_a, child)
    grant(child, purposes["gate_access"], parent_a)
    return child


# --- 1. Competence age per school ------------------------------------------------------------


def test_the_competence_age_is_12_by_default_and_12_to_16_by_the_school(school, admin_client):
    assert school.competence_age == 12
    for wrong in (11, 17):
        with pytest.raises(ValidationError, match="Between 12 and 16"):
            school_policy_update(school=school, actor=TEST_ACTOR, competence_age=wrong)
    school_policy_update(school=school, actor=TEST_ACTOR, competence_age=14)
    school.refresh_from_db()
    assert school.competence_age == 14
    event = AuditEvent.objects.get(action="school.policy_changed")
    assert event.data["changes"] == {"competence_age": [12, 14]}
    page = admin_client.get(f"/admin/consent/school/{school.pk}/change/").content.decode()
    assert 'name="competence_age"' in page
    public = Client().get(f"/schools/{school.slug}/").content.decode()
    assert "From the age of 14 a pupil may sign in to their own page" in public


# --- 2. A child's sign-in --------------------------------------------------------------------


def test_staff_api_issues_a_link_only_from_the_competence_birthday(school, child_a):
    api = key_client(school)
    url = f"/api/v1/staff/students/{child_a.pk}/child-link/"

    r = api.post(url)  # no date of birth
    assert (r.status_code, r.json()["error"]) == (400, "no_date_of_birth")

    aged(child_a, 12, birthday_in_days=1)  # the day before the 12th birthday
    r = api.post(url)
    assert (r.status_code, r.json()["error"]) == (409, "below_competence_age")

    aged(child_a, 12)  # on the 12th birthday
    r = api.post(url)
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) == {"url", "expires_at"}
    assert "/me/sign-in/" in body["url"]
    (link_row,) = ChildLink.objects.filter(student=child_a)
    assert link_row.token_hash not in body["url"]  # only the hash is stored
    event = AuditEvent.objects.get(action="auth.child_link_issued")
    assert event.subject == str(child_a.subject_id) and event.actor_kind == "api_key"
    assert child_a.name not in json.dumps(event.data)

    # A school under PIPL sets 14: a 13-year-old is below it.
    school_policy_update(school=school, actor=TEST_ACTOR, competence_age=14)
    aged(child_a, 13)
    assert api.post(url).json()["error"] == "below_competence_age"
    # Another scope, another school: refused.
    assert key_client(school, ("enrol",)).post(url).status_code == 403
    other = StudentFactory(name="Elsewhere", date_of_birth=dob(15))
    assert api.post(f"/api/v1/staff/students/{other.pk}/child-link/").status_code == 404


def test_the_link_opens_a_page_with_one_button_and_only_its_post_signs_in(pupil):
    link = child_link_issue(student=pupil, actor=TEST_ACTOR)
    path = link.url.split("://", 1)[1].split("/", 1)[1]
    browser = Client()
    page = browser.get(f"/{path}")
    assert page.status_code == 200
    assert page.content.decode().count("<button") >= 1 and 'method="post"' in page.content.decode()
    assert browser.get(ME).status_code == 403  # opening it signed nobody in
    assert not AuditEvent.objects.filter(action="auth.child_signed_in").exists()

    r = browser.post(f"/{path}")
    assert r.status_code == 302 and r["Location"] == ME
    assert "Child A" in browser.get(ME).content.decode()
    event = AuditEvent.objects.get(action="auth.child_signed_in")
    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "child",
        str(pupil.subject_id),
        "",
    )
    assert Client().post(f"/{path}").status_code == 410  # once only

    # A new link ends the one before it.
    first = child_link_issue(student=pupil, actor=TEST_ACTOR)
    child_link_issue(student=pupil, actor=TEST_ACTOR)
    assert Client().post("/" + first.url.split("/", 3)[3]).status_code == 410


def test_apps_exchange_a_childs_link_for_a_bearer_token_that_reaches_me_only(pupil):
    link = child_link_issue(student=pupil, actor=TEST_ACTOR)
    r = APIClient().post("/api/v1/auth/token/", {"magic_token": link.token}, format="json")
    assert r.status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['token']}")
    assert api.get("/api/v1/me/").json()["child"]["id"] == str(pupil.pk)
    assert api.get("/api/v1/children/").status_code == 403
    assert api.get(f"/api/v1/children/{pupil.pk}/").status_code == 403
    assert api.delete("/api/v1/auth/token/").status_code == 204
    assert api.get("/api/v1/me/").status_code == 401


def test_a_child_below_the_age_the_school_now_sets_is_signed_out(school, pupil):
    link = child_link_issue(student=pupil, actor=TEST_ACTOR)
    web, api = child_web(pupil), child_api(pupil)
    assert web.get(ME).status_code == 200
    school_policy_update(school=school, actor=TEST_ACTOR, competence_age=14)
    assert web.get(ME).status_code == 403
    assert api.get("/api/v1/me/").status_code == 403
    assert Client().get("/" + link.url.split("/", 3)[3]).status_code == 410


def test_a_child_reaches_neither_a_sibling_nor_any_parent_page(pupil, sibling, parent_a):
    sibling_receipt = ConsentDecision.objects.filter(student=sibling).first().receipt_id
    parents_export = Export.objects.create(
        student=pupil, guardian=parent_a, requested_at=timezone.now()
    )
    web, api = child_web(pupil), child_api(pupil)
    for url in (
        "/children/",
        f"/children/{pupil.pk}/",
        f"/children/{sibling.pk}/",
        f"/exports/{parents_export.pk}/",
        "/account/",
    ):
        assert web.get(url).status_code == 403, url
    for url in (
        "/api/v1/children/",
        f"/api/v1/children/{sibling.pk}/",
        f"/api/v1/children/{sibling.pk}/consents/",
        f"/api/v1/exports/{parents_export.pk}/",
    ):
        assert api.get(url).status_code == 403, url
    assert web.get(f"/me/receipts/{sibling_receipt}.json").status_code == 404
    assert api.get(f"/api/v1/me/receipts/{sibling_receipt}/").status_code == 404
    assert web.get(f"/me/exports/{parents_export.pk}/").status_code == 404
    assert api.get(f"/api/v1/me/exports/{parents_export.pk}/download/").status_code == 404
    admin = web.get("/admin/")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]
    page = web.get(ME).content.decode()
    assert "Sibling A" not in page and str(sibling.pk) not in page
    assert "Sibling A" not in api.get("/api/v1/me/").content.decode()


def test_a_childs_account_is_never_staff_nor_a_guardians(pupil, school):
    user = child_account(pupil)
    assert not user.has_usable_password()
    user.is_staff = True
    with pytest.raises(AccountsKeptApart):
        user.save()
    user.refresh_from_db()
    with pytest.raises(AccountsKeptApart):
        StaffMembership.objects.create(user=user, school=school)
    user.set_password("a-password-1")
    with pytest.raises(AccountsKeptApart):
        user.save()


# --- 3. The child's page ---------------------------------------------------------------------


def test_me_shows_what_is_held_where_why_until_when_and_who_looked(pupil, purposes, parent_a):
    FaceTemplate.objects.create(student=pupil, ciphertext=b"sealed")
    RecognitionEvent.objects.create(
        student=pupil,
        purpose=purposes["gate_access"],
        device="Main gate",
        distance=0.3,
        at=timezone.now(),
    )
    web = child_web(pupil)
    web.get(ME)  # the first look is logged
    page = web.get(ME).content.decode()
    assert 'data-count="templates">1<' in page and 'data-count="events">1<' in page
    assert "Main gate" in page
    assert "Your face is used for this. A parent said yes." in page
    assert "It will all be deleted by" in page
    assert 'data-action="biometrics.held_data_viewed"' in page and "You: looked" in page
    assert "t want my face used</button>" in page
    zh = child_web(pupil, "zh-hans").get(ME).content.decode()
    assert "我不想让学校使用我的脸" in zh and "这是你的页面" in zh


def test_api_me_is_the_held_data_document_with_purposes_as_the_consents_endpoint(
    pupil, parent_a, api_a
):
    body = child_api(pupil).get("/api/v1/me/").json()
    assert body["child"]["id"] == str(pupil.pk)
    assert body["refusal"] is False
    for section in ("photos", "templates", "recognition_events", "systems", "retention"):
        assert section in body
    parents = api_a.get(f"/api/v1/children/{pupil.pk}/consents/").json()["purposes"]
    assert [set(p) for p in body["purposes"]] == [set(p) for p in parents]
    assert [(p["code"], p["status"], p["reason"]) for p in body["purposes"]] == [
        (p["code"], p["status"], p["reason"]) for p in parents
    ]


def test_the_childs_refusal_wins_over_every_parent_and_lifting_brings_back_their_grants(
    pupil, purposes, parent_a, parent_b, api_a, web_a
):
    link(parent_b, pupil)
    grant(pupil, purposes["gate_access"], parent_b)
    before = statuses(pupil)
    assert before == {"attendance": (True, "active"), "gate_access": (True, "active")}

    r = child_api(pupil).post("/api/v1/me/refusal/", {"refuse": True}, format="json")
    assert r.status_code == 201 and r.json()["refusal"] is True and r.json()["changed"]
    assert statuses(pupil) == {
        "attendance": (False, "child_refused"),
        "gate_access": (False, "child_refused"),
    }
    record = ConsentDecision.objects.filter(student=pupil).order_by("-at", "-pk").first()
    assert (record.decision, record.guardian_id, record.purpose_id, record.method) == (
        Decision.CHILD_REFUSAL,
        None,
        None,
        "api",
    )
    event = AuditEvent.objects.get(action="consent.child_refusal")
    assert (event.actor_kind, event.actor_id, event.subject) == (
        "child",
        str(pupil.subject_id),
        str(pupil.subject_id),
    )
    assert "Child A" not in json.dumps(event.data) + event.actor_label

    # The parents see it, and when; a parent's grant after it activates nothing.
    page = web_a.get(f"/children/{pupil.pk}/").content.decode()
    assert 'id="child-refusal"' in page and "They said it on their own page." in page
    voice = api_a.get(f"/api/v1/children/{pupil.pk}/").json()["voice"]
    assert voice["refusal"] is True and voice["refusal_by_staff"] is False
    assert voice["refusal_at"] == record.at.isoformat().replace("+00:00", "Z")
    assert "Your child has said no." in web_a.get("/children/").content.decode()
    grant(pupil, purposes["gate_access"], parent_a)
    r = api_a.post(
        f"/api/v1/children/{pupil.pk}/consents/",
        {"purpose": "gate_access", "decision": "grant", "notice_version": 1},
        format="json",
    )
    assert r.status_code == 201 and r.json()["status"] == "inactive"
    # No parent can lift it: there is no such decision for a parent, by either door.
    for decision in ("child_refusal_lifted", "child_refusal"):
        r = api_a.post(
            f"/api/v1/children/{pupil.pk}/consents/",
            {"purpose": "gate_access", "decision": decision, "notice_version": 1},
            format="json",
        )
        assert r.status_code == 400, decision
        web_a.post(
            f"/children/{pupil.pk}/consent/",
            {"purpose": "gate_access", "decision": decision, "notice_version": "1"},
        )
    with pytest.raises(ConsentError):
        consent_decide(
            student=pupil,
            purpose=purposes["gate_access"],
            guardian=parent_a,
            decision=Decision.CHILD_REFUSAL_LIFTED,
            notice_version=1,
        )
    assert statuses(pupil)["gate_access"] == (False, "child_refused")

    # "I've changed my mind": exactly what the parents had granted is back.
    r = child_web(pupil).post("/me/refusal/", {"refuse": "0"})
    assert r.status_code == 302
    assert statuses(pupil) == before
    assert 'id="child-refusal"' not in web_a.get(f"/children/{pupil.pk}/").content.decode()


def test_the_child_lifts_a_refusal_staff_typed_and_a_parents_consent_is_still_needed(
    school, purposes, parent_a, web_a
):
    child = StudentFactory(school=school, name="Undecided", date_of_birth=dob(12))
    link(parent_a, child)
    child_refusal_record(student=child, actor=TEST_ACTOR, note="said so in class")
    page = web_a.get(f"/children/{child.pk}/").content.decode()
    assert "School staff recorded it for them." in page
    me = child_web(child).get(ME).content.decode()
    assert "A teacher wrote it down for you." in me
    outcome = child_refusal_by_child(student=child, refuse=False)
    assert outcome is not None and outcome.record.decision == Decision.CHILD_REFUSAL_LIFTED
    # No parent said yes: lifting the refusal makes nothing active.
    assert statuses(child) == {
        "attendance": (False, "no_consent"),
        "gate_access": (False, "no_consent"),
    }
    # Saying what stands already records nothing.
    count = ConsentDecision.objects.filter(student=child).count()
    assert child_refusal_by_child(student=child, refuse=False) is None
    r = child_api(child).post("/api/v1/me/refusal/", {"refuse": False}, format="json")
    assert r.status_code == 201 and r.json() == {
        "refusal": False,
        "changed": False,
        "receipt": None,
        "erasure_id": None,
    }
    assert ConsentDecision.objects.filter(student=child).count() == count


def test_a_refusal_on_the_page_stops_the_face_at_once_and_erases_it(pupil):
    FaceTemplate.objects.create(student=pupil, ciphertext=b"sealed")
    r = child_web(pupil).post("/me/refusal/", {"refuse": "1"}, follow=True)
    assert "Your face is not used any more" in r.content.decode()
    assert pupil.erasures.filter(trigger="consent_lost").exists()


def test_only_a_child_at_or_above_the_competence_age_refuses_for_themselves(child_a):
    aged(child_a, 12, birthday_in_days=1)
    with pytest.raises(ConsentError) as refused:
        child_refusal_by_child(student=child_a, refuse=True)
    assert refused.value.code == "below_competence_age"
    aged(child_a, 12)
    assert child_refusal_by_child(student=child_a, refuse=True) is not None


def test_bad_input_to_the_refusal_endpoint_is_a_400(pupil):
    api = child_api(pupil)
    for body in ({}, {"refuse": "perhaps"}, {"refuse": [True]}):
        assert api.post("/api/v1/me/refusal/", body, format="json").status_code == 400
    assert api.post("/api/v1/me/refusal/", "[]", content_type="application/json").status_code == 400


# --- The child's own download ----------------------------------------------------------------


def test_the_childs_own_package_in_their_language_for_them_only(
    pupil, sibling, purposes, parent_a, api_a, web_a
):
    RecognitionEvent.objects.create(
        student=pupil,
        purpose=purposes["gate_access"],
        device="Gate",
        distance=0.3,
        at=timezone.now(),
    )
    api = child_api(pupil)
    r = api.post("/api/v1/me/exports/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 202
    export = Export.objects.get(pk=r.json()["id"])
    assert (export.by_child, export.guardian_id, export.language) == (True, None, "zh-hans")
    requested = AuditEvent.objects.get(action="export.requested")
    assert (requested.actor_kind, requested.actor_id) == ("child", str(pupil.subject_id))
    export_build(export_id=export.pk)
    state = api.get(f"/api/v1/me/exports/{export.pk}/").json()
    assert state["status"] == "ready" and "/api/v1/me/exports/" in state["download_url"]
    r = api.get(f"/api/v1/me/exports/{export.pk}/download/")
    assert r.status_code == 200
    package = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
    assert json.loads(package.read("data.json"))["child"]["id"] == str(pupil.pk)
    assert 'lang="zh-hans"' in package.read("index.html").decode()
    # Nobody else: not the parent (either door), not a sibling.
    assert api_a.get(f"/api/v1/exports/{export.pk}/").status_code == 404
    assert api_a.get(f"/api/v1/exports/{export.pk}/download/").status_code == 404
    assert web_a.get(f"/exports/{export.pk}/download/").status_code == 404
    assert child_api(sibling).get(f"/api/v1/me/exports/{export.pk}/").status_code == 404
    # The parents' "who looked" names the child as the child.
    log = api_a.get(f"/api/v1/children/{pupil.pk}/").json()["access_log"]
    assert {"The child"} == {a["actor"] for a in log if a["action"].startswith("export.")}
    # The web door asks and shows progress the same way.
    web = child_web(pupil)
    r = web.post("/me/export/")
    assert r.status_code == 302 and r["Location"].startswith("/me/exports/")


# --- 5. At 18 the student decides -------------------------------------------------------------


def test_the_rule_at_the_competence_and_18th_birthdays(child_a, purposes, parent_a):
    """Day before, the instant before, the instant of, and the day of each birthday."""
    aged(child_a, 18, birthday_in_days=10)
    turned_18 = birthday_starts(child_a.date_of_birth, 18)
    gate = purposes["gate_access"]
    assert statuses(child_a, at=turned_18 - timedelta(days=1))["gate_access"] == (True, "active")
    assert statuses(child_a, at=turned_18 - timedelta(seconds=1))["gate_access"] == (True, "active")
    for at in (turned_18, turned_18 + timedelta(hours=12)):
        assert statuses(child_a, at=at) == {
            "attendance": (False, "adult_student"),
            "gate_access": (False, "adult_student"),
        }
    # Only the student decides from then on: not before, and no parent after.
    with pytest.raises(ConsentError) as early:
        student_decide(
            student=child_a,
            purpose=gate,
            decision="grant",
            notice_version=1,
            at=turned_18 - timedelta(seconds=1),
        )
    assert early.value.code == "not_adult"
    with pytest.raises(ConsentError) as parent:
        consent_decide(
            student=child_a,
            purpose=gate,
            guardian=parent_a,
            decision="object",
            notice_version=None,
            at=turned_18 + timedelta(hours=1),
        )
    assert parent.value.code == "adult_student"
    own = turned_18 + timedelta(days=1)
    student_decide(student=child_a, purpose=gate, decision="grant", notice_version=1, at=own)
    assert statuses(child_a, at=own) == {
        "attendance": (False, "adult_student"),
        "gate_access": (True, "active"),
    }
    later = own + timedelta(hours=1)
    student_decide(
        student=child_a, purpose=gate, decision="withdraw", notice_version=None, at=later
    )
    assert statuses(child_a, at=later)["gate_access"] == (False, "student_withdrew")

    # The competence birthday: a day before, not competent; from its first instant, competent.
    from consent.ages import is_competent

    aged(child_a, 12, birthday_in_days=3)
    at_12 = birthday_starts(child_a.date_of_birth, 12)
    child_a.refresh_from_db()
    assert not is_competent(child_a, at_12 - timedelta(days=1))
    assert not is_competent(child_a, at_12 - timedelta(seconds=1))
    assert is_competent(child_a, at_12) and is_competent(child_a, at_12 + timedelta(hours=12))


def test_at_18_the_data_waits_the_re_consent_window_for_the_students_own_consent(child_a, purposes):
    FaceTemplate.objects.create(student=child_a, ciphertext=b"sealed")
    aged(child_a, 18, birthday_in_days=5)
    turned_18 = birthday_starts(child_a.date_of_birth, 18)
    window = timedelta(days=child_a.school.reconsent_window_days)
    child = Student.objects.get(pk=child_a.pk)
    for at in (timezone.now(), turned_18 + timedelta(days=1)):
        everything = destroy_by(erasure_due(child, at=at))
        assert (everything.by, everything.reason, everything.trigger) == (
            turned_18 + window,
            "adult_student",
            "adult_no_consent",
        )
        assert "after the 18th birthday" in everything.rule


def test_parents_pages_say_the_student_is_now_an_adult_and_offer_no_decision(
    child_a, parent_a, web_a, api_a
):
    aged(child_a, 18)
    page = web_a.get(f"/children/{child_a.pk}/").content.decode()
    assert 'id="adult-student"' in page and "turned 18 on" in page
    assert 'name="decision"' not in page
    assert "Now an adult" in web_a.get("/children/").content.decode()
    r = api_a.post(
        f"/api/v1/children/{child_a.pk}/consents/",
        {"purpose": "gate_access", "decision": "withdraw"},
        format="json",
    )
    assert (r.status_code, r.json()["error"]) == (403, "adult_student")
    r = api_a.post(f"/api/v1/children/{child_a.pk}/erasures/", format="json")
    assert (r.status_code, r.json()["error"]) == (403, "adult_student")
    assert web_a.post(f"/children/{child_a.pk}/delete/").status_code == 403


def test_the_adult_student_grants_on_their_own_page_with_a_receipt(child_a, purposes):
    aged(child_a, 18)
    web = child_web(child_a)
    page = web.get(ME).content.decode()
    assert "You are 18 now: you decide" in page and 'value="grant"' in page
    r = web.post(
        "/me/consent/", {"purpose": "gate_access", "decision": "grant", "notice_version": "1"}
    )
    assert r.status_code == 302
    assert statuses(child_a)["gate_access"] == (True, "active")
    record = ConsentDecision.objects.filter(student=child_a, guardian=None).get()
    assert record.decision == "grant" and record.receipt["signature"]
    assert record.receipt["iso27560"]["party"] == {
        "id": str(child_a.subject_id),
        "name": "",
        "address": "",
        "contact": "",
        "type": "data_subject",
    }
    event = AuditEvent.objects.get(action="consent.grant", data__receipt=str(record.receipt_id))
    assert event.actor_kind == "child"
    receipt = web.get(f"/me/receipts/{record.receipt_id}.json")
    assert receipt.status_code == 200 and receipt.json()["consentReceiptID"] == str(
        record.receipt_id
    )
    api = child_api(child_a)
    r = api.post(
        "/api/v1/me/consents/",
        {"purpose": "attendance", "decision": "grant", "notice_version": 1},
        format="json",
    )
    assert r.status_code == 201 and r.json()["status"] == "active" and r.json()["receipt"]
    r = api.post(
        "/api/v1/me/consents/", {"purpose": "attendance", "decision": "withdraw"}, format="json"
    )
    assert r.status_code == 201 and r.json()["status"] == "inactive"
    assert statuses(child_a)["attendance"] == (False, "student_withdrew")
    # Below 18, the student's own consent is not theirs to give yet.
    aged(child_a, 17)
    r = api.post(
        "/api/v1/me/consents/",
        {"purpose": "gate_access", "decision": "grant", "notice_version": 1},
        format="json",
    )
    assert (r.status_code, r.json()["error"]) == (403, "not_adult")


# --- 6. The admin's sheet, and the access log ----------------------------------------------


def test_admin_prints_a_sheet_of_links_with_qr_codes_for_a_class(school, client, django_user_model):
    pupils = [
        StudentFactory(school=school, name=f"Pupil {i}", class_name="8B", date_of_birth=dob(13))
        for i in range(2)
    ]
    unknown = StudentFactory(school=school, name="No Birthday", class_name="8B")
    client.force_login(staff_user(django_user_model, school))
    r = client.post(
        "/admin/consent/student/",
        {
            "action": "print_child_links",
            "_selected_action": [str(s.pk) for s in [*pupils, unknown]],
        },
    )
    assert r.status_code == 200
    sheet = r.content.decode()
    assert sheet.count('class="qr"') == 2
    assert "No Birthday" in sheet and "date of birth not known" in sheet
    urls = re.findall(r"https?://[^<\s]+/me/sign-in/[^<\s/]+/", sheet)
    assert len(urls) == 2
    assert Client().get("/" + urls[0].split("/", 3)[3]).status_code == 200
    events = AuditEvent.objects.filter(action="auth.child_link_issued")
    assert events.count() == 2 and {e.actor_kind for e in events} == {"staff"}
    assert {e.subject for e in events} == {str(p.subject_id) for p in pupils}


def test_the_access_log_shows_the_childs_own_looks_as_the_child(pupil, api_a):
    web = child_web(pupil)
    web.get(ME)
    web.get(ME)
    web.get("/api/v1/me/")  # the same look, within the quarter of an hour: logged once
    looks = AuditEvent.objects.filter(action="biometrics.held_data_viewed")
    assert looks.count() == 1 and looks.get().actor_kind == "child"
    log = api_a.get(f"/api/v1/children/{pupil.pk}/").json()["access_log"]
    assert [(a["actor"], a["action"]) for a in log] == [
        ("The child", "biometrics.held_data_viewed")
    ]
    mine = child_api(pupil).get("/api/v1/me/").json()["access_log"]
    assert [a["actor"] for a in mine] == ["You"]


def test_the_stored_statuses_follow_the_18th_birthday(child_a):
    from consent.status import consent_status_check

    aged(child_a, 18, birthday_in_days=2)
    turned_18 = birthday_starts(child_a.date_of_birth, 18)
    row = child_a.consent_statuses.first()
    assert row.recheck_at == turned_18
    assert consent_status_check().drift == []


def test_the_child_link_command_prints_a_link_or_says_why_not(pupil, school):
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("child_link", pupil.external_id, "--school", school.slug, stdout=out)
    assert "/me/sign-in/" in out.getvalue()
    young = StudentFactory(school=school, name="Young", date_of_birth=dob(9))
    with pytest.raises(CommandError, match="below_competence_age"):
        call_command("child_link", young.external_id, "--school", school.slug)
