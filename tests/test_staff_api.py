"""Staff and integration API (docs/architecture.md): roster, guardians, leavers, child refusal,
enrolment with its 409/422 answers, and the school scoping of API keys."""

import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.models import ErasureRequest, FaceTemplate, Photo
from biometrics.services import photo_process
from consent.models import (
    AuditEvent,
    ConsentDecision,
    Guardian,
    NoticeDelivery,
    Notification,
    Student,
)
from consent.rules import active_purpose_codes
from portal.auth import api_key_create

from .factories import SchoolFactory, StudentFactory


def key_client(school, scopes=("roster", "enrol", "identify")):
    _, secret = api_key_create(school=school, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


@pytest.fixture
def staff(school):
    return key_client(school)


def upload(client, student, data: bytes, name="photo.jpg"):
    return (
        client.post(
            f"/api/v1/staff/students/{student.pk}/photos/",
            {"image": io.BytesIO(data) if data is not None else None},
            format="multipart",
        )
        if data is not None
        else client.post(f"/api/v1/staff/students/{student.pk}/photos/", {})
    )


def nothing_stored(student, media_dir):
    return not Photo.objects.filter(student=student).exists() and not any(media_dir.rglob("*.gv1"))


def test_create_student_and_guardian_queues_the_notice(staff, school, purposes):
    r = staff.post(
        "/api/v1/staff/students/",
        {
            "external_id": "S-1",
            "name": "New Child",
            "date_of_birth": "2016-04-01",
            "class_name": "Year 4",
        },
        format="json",
    )
    assert r.status_code == 201
    student_id = r.json()["id"]
    r = staff.post(
        "/api/v1/staff/guardians/",
        {
            "email": "new.parent@example.com",
            "name": "New Parent",
            "student_ids": [student_id],
            "parental_responsibility": True,
        },
        format="json",
    )
    assert r.status_code == 201
    guardian = Guardian.objects.get(pk=r.json()["id"])
    # The notice is on its way; only its acceptance by the mail server notifies (test_notices).
    assert NoticeDelivery.objects.filter(guardianship__guardian=guardian).count() == 1
    assert not Notification.objects.filter(guardianship__guardian=guardian).exists()
    dup = staff.post(
        "/api/v1/staff/students/", {"external_id": "S-1", "name": "Again"}, format="json"
    )
    assert dup.status_code == 409
    assert dup.json()["error"] == "duplicate_student"


def test_bad_roster_input_is_a_400_with_a_code(staff):
    r = staff.post("/api/v1/staff/students/", {"name": ""}, format="json")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid"
    assert not Student.objects.exists()


def test_enrolment_with_active_consent_is_202_and_stored_encrypted(staff, child_a, media_dir):
    r = upload(staff, child_a, demo_photos.grace_hopper())
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "pending"
    status = staff.get(f"/api/v1/staff/photos/{body['id']}/")
    assert status.json()["status"] == "pending"
    (stored,) = list(media_dir.rglob("*.gv1"))
    assert demo_photos.grace_hopper()[200:260] not in stored.read_bytes()


def test_enrolment_without_active_consent_is_409_and_stores_nothing(
    staff, school, purposes, media_dir
):
    child = StudentFactory(school=school)
    r = upload(staff, child, demo_photos.grace_hopper())
    assert r.status_code == 409
    assert r.json()["error"] == "no_active_consent"
    assert nothing_stored(child, media_dir)
    assert AuditEvent.objects.filter(
        action="biometrics.enrolment_refused", subject=str(child.subject_id)
    ).exists()


def _jpeg(img):
    out = io.BytesIO()
    img.save(out, "JPEG")
    return out.getvalue()


def _png_bomb():
    out = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(out, "PNG")
    return out.getvalue()


def _tiny_face():
    face = Image.open(io.BytesIO(demo_photos.grace_hopper())).resize((96, 112))
    canvas = Image.new("RGB", (1000, 1000), "gray")
    canvas.paste(face, (450, 450))
    return _jpeg(canvas)


def _gif():
    out = io.BytesIO()
    Image.open(io.BytesIO(demo_photos.grace_hopper())).save(out, "GIF")
    return out.getvalue()


def _png_49_megapixels():
    out = io.BytesIO()
    Image.new("L", (7000, 7000), 128).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: b"%PDF-1.4 not an image", "not_an_image"),
        (lambda: _gif(), "unsupported_format"),
        (_png_bomb, "decompression_bomb"),
        (_png_49_megapixels, "decompression_bomb"),
        (lambda: _jpeg(Image.new("RGB", (40, 40), "white")), "face_too_small"),
    ],
    ids=["not-image", "gif", "png-bomb", "png-49mp", "smaller-than-a-face"],
)
def test_what_the_header_shows_is_422_at_once_and_nothing_stored(
    staff, child_a, media_dir, make, code
):
    r = upload(staff, child_a, make())
    assert r.status_code == 422
    assert r.json()["error"] == code
    assert r.json()["detail"]
    assert nothing_stored(child_a, media_dir)
    assert AuditEvent.objects.filter(
        action="biometrics.enrolment_rejected", subject=str(child_a.subject_id)
    ).exists()


@pytest.mark.parametrize(
    ("make", "codes"),
    [
        (lambda: demo_photos.grace_hopper()[:15000], {"truncated_image"}),
        (lambda: _jpeg(Image.new("RGB", (640, 480), "white")), {"no_face"}),
        (demo_photos.astronaut_full, {"multiple_faces"}),
        (_tiny_face, {"face_too_small", "no_face"}),
    ],
    ids=["truncated", "no-face", "two-faces", "tiny-face"],
)
def test_what_only_decoding_shows_is_a_rejected_photo_without_its_bytes(
    staff, child_a, media_dir, make, codes
):
    """202 pending; the faces worker decodes it and rejects it with its reason."""
    r = upload(staff, child_a, make())
    assert r.status_code == 202
    photo_id = r.json()["id"]
    assert r.json()["status"] == "pending"
    photo_process(photo_id=photo_id)
    status = staff.get(f"/api/v1/staff/photos/{photo_id}/").json()
    assert status["status"] == "rejected"
    assert status["reason"] in codes
    assert not any(media_dir.rglob("*.gv1"))
    assert not FaceTemplate.objects.filter(student=child_a, photo_id=photo_id).exists()


def test_30_mb_upload_is_422_too_large(staff, child_a, media_dir):
    r = upload(staff, child_a, b"\xff\xd8" + b"0" * (30 * 1024 * 1024))
    assert r.status_code == 422
    assert r.json()["error"] == "too_large"
    assert nothing_stored(child_a, media_dir)


def test_missing_image_is_400(staff, child_a):
    r = staff.post(f"/api/v1/staff/students/{child_a.pk}/photos/", {}, format="multipart")
    assert r.status_code == 400
    assert r.json()["error"] == "missing_image"


def test_child_refusal_stops_every_purpose_and_opens_an_erasure(
    staff, enrolled_child_a, parent_a, purposes
):
    assert active_purpose_codes(enrolled_child_a)
    r = staff.post(
        f"/api/v1/staff/students/{enrolled_child_a.pk}/child-refusal/",
        {"note": "Said no at the gate"},
        format="json",
    )
    assert r.status_code == 201
    assert not active_purpose_codes(enrolled_child_a)
    assert ErasureRequest.objects.filter(student=enrolled_child_a, status="pending").exists()
    assert ConsentDecision.objects.filter(student=enrolled_child_a, guardian=None).count() == 1


def test_leaver_stops_every_purpose(staff, enrolled_child_a):
    r = staff.post(f"/api/v1/staff/students/{enrolled_child_a.pk}/leave/")
    assert r.status_code == 200
    assert r.json()["status"] == "leaver"
    enrolled_child_a.refresh_from_db()
    assert not active_purpose_codes(enrolled_child_a)
    # erased by the retention job at the end of the leaver window, not at once
    assert not ErasureRequest.objects.filter(student=enrolled_child_a).exists()


def test_keys_are_scoped_to_their_school_and_their_scopes(child_a):
    other = key_client(SchoolFactory(slug="other"))
    assert upload(other, child_a, demo_photos.grace_hopper()).status_code == 404
    assert other.post(f"/api/v1/staff/students/{child_a.pk}/leave/").status_code == 404
    roster_only = key_client(child_a.school, scopes=("roster",))
    r = upload(roster_only, child_a, demo_photos.grace_hopper())
    assert r.status_code == 403
    assert r.json()["error"] == "permission_denied"
    assert APIClient().post("/api/v1/staff/students/", {}, format="json").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Api-Key nonsense")
    assert bad.post("/api/v1/staff/students/", {}, format="json").status_code == 401


def test_create_api_key_command_prints_the_key_last(db, school, capsys):
    from django.core.management import call_command

    call_command("create_api_key", "--school", school.slug, "--scopes", "roster,enrol")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    r = client.post("/api/v1/staff/students/", {"external_id": "X", "name": "Y"}, format="json")
    assert r.status_code == 201
