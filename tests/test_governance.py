"""Governance records: a purpose is enabled only with a DPIA the school's DPO signed off (UK GDPR
Art 35), and each school's record of processing (Art 30) is downloadable from admin."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group

from biometrics.services import holder_create
from consent.models import AuditEvent, DpiaSignOff, Purpose, School, StaffMembership
from consent.services import (
    ConsentError,
    dpia_sign_off,
    notice_publish,
    purpose_create,
    purpose_update,
)
from consent.status import consent_status_check
from portal.processing_record import CSV_COLUMNS

from .factories import TEST_ACTOR, SchoolFactory, dpo_of
from .factories import purpose_with_notice as make_purpose
from .test_admin import staff_user
from .test_admin_doors import last_event_id, url
from .test_consent_status import page_form

NOT_SIGNED = "has not been signed off by the school"


def ready_purpose(school, code="library") -> Purpose:
    """Notice, alternative and DPIA reference: everything but the DPO's sign-off."""
    purpose = purpose_create(
        school=school,
        code=code,
        name="Library",
        description="The library desk recognises the child.",
        alternative="A library card.",
        dpia_reference="DPIA-LIB-2",
        actor=TEST_ACTOR,
    )
    notice_publish(purpose=purpose, text="Library notice", actor=TEST_ACTOR)
    return purpose


@pytest.fixture
def dpo(django_user_model, school):
    user = staff_user(django_user_model, school, group="DPO", name="dana")
    StaffMembership.objects.filter(user=user).update(role=StaffMembership.Role.DPO)
    return user


@pytest.fixture
def school_admin(django_user_model, school):
    return staff_user(django_user_model, school, name="admin_a")


# --- The DPIA sign-off ---------------------------------------------------------------------


def test_enabling_without_the_dpos_sign_off_is_refused_then_allowed_once_signed(
    school, school_admin, dpo
):
    purpose = ready_purpose(school)
    mark = last_event_id()
    with pytest.raises(ConsentError) as refused:
        purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    assert refused.value.code == "purpose_not_ready"
    assert "Its DPIA (DPIA-LIB-2) " + NOT_SIGNED in refused.value.detail
    purpose.refresh_from_db()
    assert not purpose.enabled and not AuditEvent.objects.filter(pk__gt=mark).exists()

    # Only a DPO of the purpose's school signs: not a school admin, not a superuser, not the
    # DPO of another school.
    other = SchoolFactory(slug="other", name="Other School")
    for who in (school_admin, dpo_of(other)):
        with pytest.raises(ConsentError) as not_dpo:
            dpia_sign_off(purpose=purpose, signed_by=who, actor=TEST_ACTOR)
        assert not_dpo.value.code == "not_dpo"
    assert not DpiaSignOff.objects.exists()

    sign_off = dpia_sign_off(purpose=purpose, signed_by=dpo, actor=TEST_ACTOR)
    assert (sign_off.document_reference, sign_off.signed_by) == ("DPIA-LIB-2", dpo)
    event = AuditEvent.objects.get(action="consent.dpia_signed_off")
    assert event.data == {
        "id": sign_off.pk,
        "purpose": "library",
        "document": "DPIA-LIB-2",
        "signed_by": dpo.pk,
    }
    purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    purpose.refresh_from_db()
    assert purpose.enabled

    # Naming another DPIA document while enabled needs its own sign-off.
    with pytest.raises(ConsentError, match=NOT_SIGNED):
        purpose_update(purpose=purpose, dpia_reference="DPIA-LIB-3", actor=TEST_ACTOR)
    dpia_sign_off(purpose=purpose, signed_by=dpo, document_reference="DPIA-LIB-3", actor=TEST_ACTOR)
    purpose.refresh_from_db()
    assert purpose.dpia_reference == "DPIA-LIB-3" and purpose.enabled
    assert consent_status_check().drift == []


def test_a_purpose_enabled_before_sign_offs_stays_enabled_and_is_flagged(school, admin_client, dpo):
    """No sign-off is invented for purposes enabled before they were recorded: they keep
    working (turning them off would erase every child's data), they can be edited, and admin
    flags them until their DPO signs them off."""
    legacy = make_purpose(school, "gate_access", enabled=False, signed_off=False)
    Purpose.objects.filter(pk=legacy.pk).update(enabled=True)  # as an older version left it
    signed = make_purpose(school, "attendance")
    legacy.refresh_from_db()
    purpose_update(purpose=legacy, name="Gates", actor=TEST_ACTOR)  # still editable

    page = admin_client.get(url(Purpose, "changelist")).content.decode()
    assert page.count("DPIA not signed off") >= 2  # the filter's choice and the legacy row
    flagged = admin_client.get(url(Purpose, "changelist") + "?dpia=not_signed_off")
    assert list(flagged.context["cl"].result_list) == [legacy]
    assert signed.dpia_sign_off() is not None


def test_a_dpo_signs_off_from_admin_and_nobody_else_is_offered_the_action(
    school, client, dpo, school_admin, admin_user
):
    purpose = ready_purpose(school)
    changelist = url(Purpose, "changelist")
    for not_dpo in (school_admin, admin_user):
        client.force_login(not_dpo)
        assert "sign_off_dpia" not in client.get(changelist).content.decode()
        client.post(changelist, {"action": "sign_off_dpia", "_selected_action": [purpose.pk]})
    assert not DpiaSignOff.objects.exists()

    client.force_login(dpo)
    r = client.post(
        changelist, {"action": "sign_off_dpia", "_selected_action": [purpose.pk]}, follow=True
    )
    assert "Signed off the DPIA of 1 purpose(s)." in r.content.decode()
    (sign_off,) = DpiaSignOff.objects.all()
    assert (sign_off.signed_by, sign_off.document_reference) == (dpo, "DPIA-LIB-2")
    event = AuditEvent.objects.get(action="consent.dpia_signed_off")
    assert (event.actor_kind, event.actor_id) == ("staff", str(dpo.pk))
    page = client.get(url(Purpose, "change", purpose.pk)).content.decode()
    assert "DPIA-LIB-2" in page and "dana" in page  # the sign-offs' inline: which, by whom

    # Now the school admin can enable it from the form.
    client.force_login(school_admin)
    page_url = url(Purpose, "change", purpose.pk)
    r = client.post(page_url, {**page_form(client, page_url), "enabled": "on"})
    assert r.status_code == 302
    purpose.refresh_from_db()
    assert purpose.enabled


def test_the_admin_form_says_the_dpia_is_not_signed_off(school, admin_client):
    purpose = ready_purpose(school)
    page = url(Purpose, "change", purpose.pk)
    r = admin_client.post(page, {**page_form(admin_client, page), "enabled": "on"})
    assert r.status_code == 200 and NOT_SIGNED in r.content.decode()
    purpose.refresh_from_db()
    assert not purpose.enabled


# --- The record of processing (Art 30) ---------------------------------------------------


def record_url(school: School, fmt: str) -> str:
    return f"/admin/schools/{school.pk}/record-of-processing.{fmt}"


@pytest.fixture
def governed_school(school):
    make_purpose(school, "gate_access")
    unsigned = make_purpose(school, "attendance", enabled=False, signed_off=False)
    holder_create(
        school=school,
        name="Gate controller",
        base_url="https://gates.example.net:8443",
        secret="a-secret-value-12345",
        actor=TEST_ACTOR,
    )
    return school, unsigned


def test_the_record_of_processing_has_every_art_30_field_and_its_download_is_audited(
    governed_school, client, school_admin, dpo
):
    school, _unsigned = governed_school
    client.force_login(school_admin)
    page = client.get(url(School, "change", school.pk)).content.decode()
    assert record_url(school, "json") in page and record_url(school, "csv") in page

    r = client.get(record_url(school, "json"))
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert r["Content-Disposition"].startswith('attachment; filename="record-of-processing-')
    record = json.loads(r.content)
    # (a) controller and DPO
    assert record["controller"]["name"] == "Test School"
    assert record["dpo"] == {"name": "Dana Officer", "email": "dpo@test-school.example"}
    # (b) purposes, each with its lawful basis, notice and DPIA sign-off
    gate, attendance = sorted(record["activities"], key=lambda a: a["purpose"], reverse=True)
    assert gate["purpose"] == "gate_access" and gate["enabled"] is True
    assert gate["dpia"]["signed_off"] is True and gate["dpia"]["signed_off_by"] == "Dana"
    assert attendance["dpia"] == {
        "reference": "DPIA-attendance",
        "signed_off": False,
        "signed_off_by": None,
        "signed_off_at": None,
    }
    assert "9(2)(a)" in gate["lawful_basis"] and gate["non_biometric_alternative"]
    # (c) categories of data subjects and personal data (biometric ones marked special)
    categories = {c["category"]: c["special_category"] for c in record["data_categories"]}
    assert categories["Face templates"] is True and categories["Pupil roster details"] is False
    assert record["data_subjects"]
    # systems: the catalogue and the configured holders
    assert [s["name"] for s in record["systems"]] == [
        "Guardian portal database",
        "Photo storage",
        "Match cache",
        "Child's data key",
        "Gate controller",
    ]
    # (d) recipients, (e) transfers, (f) retention, (g) security
    (holder,) = [r for r in record["recipients"] if r["name"] == "Gate controller"]
    assert holder["host"] == "gates.example.net"
    assert "gates.example.net" in record["third_country_transfers"]
    assert record["retention"]["recognition_events"] == "deleted after 30 days"
    assert "30 days" in record["retention"]["leavers"]
    assert any("AES-256-GCM" in m for m in record["security_measures"])
    assert "a-secret-value" not in r.content.decode()  # the holder's secret never

    event = AuditEvent.objects.get(action="school.record_of_processing_downloaded")
    assert (event.actor_kind, event.school_id, event.data) == (
        "staff",
        school.pk,
        {"format": "json", "purposes": 2},
    )


def test_the_record_as_csv_is_one_row_per_purpose(governed_school, client, dpo):
    school, _ = governed_school
    client.force_login(dpo)
    r = client.get(record_url(school, "csv"))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert list(rows[0]) == CSV_COLUMNS
    by_purpose = {row["purpose"]: row for row in rows}
    assert set(by_purpose) == {"gate_access", "attendance"}
    assert by_purpose["attendance"]["dpia_signed_off_by"] == "not signed off"
    assert by_purpose["gate_access"]["dpia_signed_off_by"] == "Dana"
    assert all(row[column] for row in rows for column in ("retention", "security_measures"))
    assert AuditEvent.objects.get(action="school.record_of_processing_downloaded").data == {
        "format": "csv",
        "purposes": 2,
    }


def test_the_record_is_for_that_schools_staff_only(governed_school, client, django_user_model):
    school, _ = governed_school
    other = SchoolFactory(slug="school-b", name="School B")
    client.force_login(staff_user(django_user_model, other, name="admin_b"))
    assert client.get(record_url(school, "json")).status_code == 404
    operator = staff_user(django_user_model, school, group="Enrolment operator", name="op")
    client.force_login(operator)
    assert client.get(record_url(school, "json")).status_code == 403
    client.force_login(staff_user(django_user_model, school, name="admin_a"))
    assert client.get(record_url(school, "xml")).status_code == 403
    assert not AuditEvent.objects.filter(action="school.record_of_processing_downloaded").exists()


def test_the_dpo_group_sees_the_purposes(db):
    assert Group.objects.get(name="DPO").permissions.filter(codename="view_purpose").exists()
