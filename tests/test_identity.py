"""Re-consent after an erasure (biometrics/identity.py): the first enrolment after a verified
erasure gives the child a new pseudonym and a new data key, so enrolment, copies to holders and
identification work again, and the old pseudonym is never used again. Against a real reference
holder process; the erasure steps run in this process, as a worker would run them."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics import identity as identity_module
from biometrics.crypto import child_key_for_reading, child_key_renew
from biometrics.erasure import erasure_open, erasure_step_run
from biometrics.faces import embedding_from_photo
from biometrics.identity import child_identity_renew
from biometrics.models import ChildKey, ErasureRequest, FaceTemplate, Photo, TemplateCopy
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.selectors import held_data, template_embedding
from biometrics.services import photo_enrol, photo_process, template_copy_push
from consent.models import AuditEvent, RetiredSubject, Student
from portal.auth import api_key_create

from .factories import TEST_ACTOR, grant


@pytest.fixture
def staff(school):
    _, secret = api_key_create(school=school, scopes=["enrol", "identify"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def enrol(staff, child, data=None):
    """The capture station's upload; then what the faces worker and the copy task do."""
    r = staff.post(
        f"/api/v1/staff/students/{child.pk}/photos/",
        {"image": io.BytesIO(data or demo_photos.grace_hopper())},
        format="multipart",
    )
    if r.status_code == 202:
        photo_process(photo_id=r.json()["id"])
        for copy in TemplateCopy.objects.filter(template__student_id=child.pk, status="pending"):
            template_copy_push(copy_id=copy.pk)
    return r


def who_is(staff, data):
    r = staff.post(
        "/api/v1/identify/",
        {
            "embedding": [float(x) for x in embedding_from_photo(data)],
            "purpose": "gate_access",
            "device": "Gate",
        },
        format="json",
    )
    assert r.status_code == 200
    return r.json()["match"]


def decide(api, child, decision):
    r = api.post(
        f"/api/v1/children/{child.pk}/consents/",
        {"purpose": "gate_access", "decision": decision, "notice_version": 1},
        format="json",
    )
    assert r.status_code == 201
    return r.json()


def run_steps(erasure, capture) -> ErasureRequest:
    """What the workers do: every step, the key last."""
    with capture(execute=True):
        for step in erasure.steps.exclude(kind="key"):
            erasure_step_run(step_id=step.pk)
        for step in erasure.steps.filter(kind="key"):
            erasure_step_run(step_id=step.pk)
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    return erasure


def withdraw_and_erase(api, child, capture) -> ErasureRequest:
    erasure_id = decide(api, child, "withdraw")["erasure_id"]
    return run_steps(ErasureRequest.objects.get(pk=erasure_id), capture)


def expire_and_erase(child, capture) -> ErasureRequest:
    granted = child.decisions.latest("at").at
    expiry = granted + timedelta(days=child.school.consent_validity_days)
    with capture(execute=True):
        call_command("enforce_retention", "--job", "consents", "--as-of", expiry.isoformat())
    erasure = ErasureRequest.objects.get(student=child, status="pending")
    assert erasure.trigger == "consent_expired"
    return run_steps(erasure, capture)


@pytest.mark.parametrize("ending", ["withdrawal", "consent_expired"])
def test_re_enrolment_after_a_verified_erasure_is_identified_again_under_a_new_pseudonym(
    ending,
    school,
    purposes,
    child_a,
    parent_a,
    api_a,
    staff,
    holder,
    holder_proc,
    media_dir,
    sent_jobs,
    django_capture_on_commit_callbacks,
):
    holder_client = holder_proc.info["client"]
    assert enrol(staff, child_a).status_code == 202
    old = str(child_a.subject_id)
    assert holder_client.get_subject(old) is not None
    first_photo = Photo.objects.get(student=child_a)
    assert api_a.get(f"/api/v1/children/{child_a.pk}/photos/{first_photo.pk}/").status_code == 200
    if ending == "withdrawal":
        erasure = withdraw_and_erase(api_a, child_a, django_capture_on_commit_callbacks)
    else:
        erasure = expire_and_erase(child_a, django_capture_on_commit_callbacks)
    assert holder_client.get_subject(old) is None
    assert ChildKey.objects.get(student_id=child_a.pk).wrapped_key is None

    # The parent consents again (the yearly renewal, after expiry), and staff enrol the child.
    assert decide(api_a, child_a, "grant")["status"] == "active"
    r = enrol(staff, child_a)

    assert r.status_code == 202  # was a 500: the destroyed key could not be used
    child_a.refresh_from_db()
    new = str(child_a.subject_id)
    assert new != old
    renewed = AuditEvent.objects.get(action="biometrics.identity_renewed")
    assert (renewed.subject, renewed.data) == (new, {"retired_subject": old})
    assert renewed.actor_kind == "api_key"
    assert RetiredSubject.objects.get(subject_id=old).student_id == child_a.pk
    # A new key, made after the erasure; the template is sealed under it and readable.
    key_row = ChildKey.objects.get(student_id=child_a.pk)
    assert key_row.wrapped_key is not None and key_row.destroyed_at is None
    assert key_row.created_at >= erasure.completed_at
    template = FaceTemplate.objects.get(student=child_a)
    assert template_embedding(template).shape == (128,)
    assert [p.name for p in (media_dir / "photos" / new).iterdir()]
    assert not (media_dir / "photos" / old).exists() or not list(
        (media_dir / "photos" / old).iterdir()
    )
    # The real face is identified again.
    assert who_is(staff, demo_photos.grace_hopper_half())["student_id"] == str(child_a.pk)
    # The holder holds the copy under the new pseudonym only; the old one never comes back.
    held = holder_client.get_subject(new)
    assert [t["template"] for t in held["templates"]] == [str(template.pk)]
    assert holder_client.get_subject(old) is None
    assert old not in set(holder_client.iter_subjects())
    # Nothing written since names the old pseudonym, but its erasure receipt still does.
    assert not AuditEvent.objects.filter(pk__gt=renewed.pk, subject=old).exists()
    receipt = signed_receipt(erasure)
    assert receipt["subject"] == old and receipt_verify(receipt)
    # The parent still sees who looked at the child's data before the erasure.
    actions = [a["action"] for a in held_data(child_a)["access_log"]]
    assert "biometrics.photo_viewed" in actions


def test_no_pseudonym_is_ever_given_out_twice(
    child_a,
    parent_a,
    api_a,
    staff,
    holder,
    monkeypatch,
    sent_jobs,
    django_capture_on_commit_callbacks,
):
    """Two erasures and two re-enrolments: three pseudonyms. The random source is made to offer
    a retired pseudonym and the child's current one first: both are passed over."""
    pseudonyms = [str(child_a.subject_id)]
    for _ in range(2):
        assert enrol(staff, child_a).status_code == 202
        withdraw_and_erase(api_a, child_a, django_capture_on_commit_callbacks)
        decide(api_a, child_a, "grant")
        offered = iter([uuid.UUID(pseudonyms[0]), uuid.UUID(pseudonyms[-1]), uuid.uuid4()])
        monkeypatch.setattr(identity_module, "uuid4", offered.__next__)
        assert enrol(staff, child_a).status_code == 202
        monkeypatch.undo()
        child_a.refresh_from_db()
        pseudonyms.append(str(child_a.subject_id))
    assert len(set(pseudonyms)) == 3
    assert child_a.pseudonyms() == pseudonyms[::-1]
    assert set(RetiredSubject.objects.values_list("subject_id", flat=True)) == {
        uuid.UUID(s) for s in pseudonyms[:2]
    }
    assert who_is(staff, demo_photos.grace_hopper_half())["student_id"] == str(child_a.pk)


def test_no_new_identity_while_an_erasure_is_open(
    child_a, parent_a, api_a, staff, holder, sent_jobs, django_capture_on_commit_callbacks
):
    """A parent consents again after one erasure, and staff start another before the child is
    photographed: while that second erasure is open, nothing is minted or stored."""
    assert enrol(staff, child_a).status_code == 202
    before = child_a.subject_id
    withdraw_and_erase(api_a, child_a, django_capture_on_commit_callbacks)
    decide(api_a, child_a, "grant")
    second = erasure_open(student=child_a, trigger="staff", actor=TEST_ACTOR).pk

    assert not child_identity_renew(student=child_a, actor=TEST_ACTOR)
    r = enrol(staff, child_a)
    assert (r.status_code, r.json()["error"]) == (409, "no_active_consent")
    child_a.refresh_from_db()
    assert child_a.subject_id == before
    assert not RetiredSubject.objects.exists()
    # Once it is verified, the next enrolment works.
    run_steps(ErasureRequest.objects.get(pk=second), django_capture_on_commit_callbacks)
    assert enrol(staff, child_a).status_code == 202
    child_a.refresh_from_db()
    assert child_a.subject_id != before


def test_a_second_enrolment_with_a_stale_record_uses_the_identity_the_first_made(
    child_a, parent_a, api_a, staff, holder, sent_jobs, django_capture_on_commit_callbacks
):
    """Two capture stations load the child before either enrols: the first renews, the second
    sees the renewal under the row lock and enrols under the same new pseudonym and key."""
    assert enrol(staff, child_a).status_code == 202
    withdraw_and_erase(api_a, child_a, django_capture_on_commit_callbacks)
    decide(api_a, child_a, "grant")
    station_1 = Student.objects.get(pk=child_a.pk)
    station_2 = Student.objects.get(pk=child_a.pk)
    photo_enrol(student=station_1, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    key = child_key_for_reading(child_a.pk)
    photo_enrol(student=station_2, data=demo_photos.grace_hopper_half(), actor=TEST_ACTOR)

    assert station_2.subject_id == station_1.subject_id != child_a.subject_id
    assert RetiredSubject.objects.count() == 1
    assert AuditEvent.objects.filter(action="biometrics.identity_renewed").count() == 1
    assert child_key_for_reading(child_a.pk) == key == child_key_renew(child_a)
    folders = {p.storage_name.rsplit("/", 1)[0] for p in Photo.objects.filter(student=child_a)}
    assert folders == {f"photos/{station_1.subject_id}"}


def test_a_child_never_erased_keeps_their_pseudonym(enrolled_child_a, staff):
    before = enrolled_child_a.subject_id
    assert enrol(staff, enrolled_child_a).status_code == 202
    enrolled_child_a.refresh_from_db()
    assert enrolled_child_a.subject_id == before
    assert not AuditEvent.objects.filter(action="biometrics.identity_renewed").exists()


def test_a_grant_alone_mints_nothing(
    child_a, parent_a, api_a, staff, holder, sent_jobs, django_capture_on_commit_callbacks
):
    """The new identity waits for an enrolment: a parent who consents again but whose child is
    never photographed leaves no new key and no new pseudonym behind."""
    assert enrol(staff, child_a).status_code == 202
    withdraw_and_erase(api_a, child_a, django_capture_on_commit_callbacks)
    before = Student.objects.get(pk=child_a.pk).subject_id
    grant(child_a, child_a.school.purposes.get(code="gate_access"), parent_a, at=timezone.now())
    assert Student.objects.get(pk=child_a.pk).subject_id == before
    assert ChildKey.objects.get(student_id=child_a.pk).wrapped_key is None
