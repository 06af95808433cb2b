"""The parent API (docs/architecture.md): exact shapes, real data, and nobody sees another
family's child."""

import hashlib

import numpy as np
import pytest
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.models import FaceTemplate, Photo
from biometrics.selectors import template_embedding
from consent.models import AuditEvent

HELD_KEYS = {
    "child": {"id", "name", "school", "class_name", "status"},
    "purposes": {"code", "name", "status", "reason", "alternative"},
    "photos": {"id", "captured_at", "source", "sha256", "width", "height"},
    "templates": {"id", "created_at", "model", "dimensions", "photo_id"},
    "systems": {"name", "kind", "holds", "items"},
    "retention": {"destroy_by", "rule"},
    "access_log": {"at", "actor", "action"},
}


def child_urls(child):
    photo = Photo.objects.filter(student=child).first()
    template = FaceTemplate.objects.filter(student=child).first()
    return [
        f"/api/v1/children/{child.pk}/",
        f"/api/v1/children/{child.pk}/templates/{template.pk}/",
        f"/api/v1/children/{child.pk}/photos/{photo.pk}/",
    ]


def test_children_list_shape_and_statuses(api_a, child_a):
    r = api_a.get("/api/v1/children/")
    assert r.status_code == 200
    assert r.json() == [
        {
            "id": str(child_a.pk),
            "name": "Child A",
            "school": "Test School",
            "purposes": [
                {"code": "attendance", "status": "inactive"},
                {"code": "gate_access", "status": "active"},
            ],
        }
    ]


def test_held_data_document_lists_every_item(api_a, enrolled_child_a):
    photo_id = Photo.objects.get(student=enrolled_child_a).pk
    api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/photos/{photo_id}/")  # one access
    r = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/")
    assert r.status_code == 200
    doc = r.json()
    for key, fields in HELD_KEYS.items():
        items = doc[key] if isinstance(doc[key], list) else [doc[key]]
        assert items, key
        for item in items:
            assert fields <= set(item), (key, fields - set(item))
    assert set(doc["recognition_events"]) >= {"count", "recent"}
    assert set(doc) >= {"erasures"}
    photo = doc["photos"][0]
    assert photo["sha256"] == hashlib.sha256(demo_photos.grace_hopper()).hexdigest()
    assert (photo["width"], photo["height"]) == (512, 600)
    template = doc["templates"][0]
    assert template["dimensions"] == 128 and template["photo_id"] == photo["id"]
    assert "dlib" in template["model"]
    systems = {s["name"]: s for s in doc["systems"]}
    assert systems["Photo storage"]["items"] == 1
    assert systems["Guardian portal database"]["items"] == 2  # photo record + template
    assert doc["retention"]["destroy_by"] and doc["retention"]["rule"]


def test_template_endpoint_returns_the_real_128_numbers(api_a, enrolled_child_a):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    r = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/templates/{template.pk}/")
    assert r.status_code == 200
    body = r.json()
    assert len(body["embedding"]) == 128
    assert np.allclose(body["embedding"], template_embedding(template))
    assert body["model"] and body["dimensions"] == 128
    assert AuditEvent.objects.filter(
        action="biometrics.template_viewed", subject=str(enrolled_child_a.subject_id)
    ).exists()


def test_photo_endpoint_returns_the_original_bytes_and_logs_it(api_a, enrolled_child_a):
    photo = Photo.objects.get(student=enrolled_child_a)
    r = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/photos/{photo.pk}/")
    assert r.status_code == 200
    assert r["Content-Type"] == "image/jpeg"
    assert r.content == demo_photos.grace_hopper()
    doc = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/").json()
    assert {"actor": "You", "action": "biometrics.photo_viewed"}.items() <= doc["access_log"][
        0
    ].items()


def test_wrong_parent_gets_404_on_every_child_endpoint(api_b, child_b, enrolled_child_a):
    for url in child_urls(enrolled_child_a):
        r = api_b.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"] == "not_found"
        assert "Child A" not in r.content.decode()
    assert [c["name"] for c in api_b.get("/api/v1/children/").json()] == ["Child B"]


def test_no_sign_in_gets_401_everywhere(enrolled_child_a):
    anonymous = APIClient()
    for url in ["/api/v1/children/", *child_urls(enrolled_child_a)]:
        r = anonymous.get(url)
        assert r.status_code == 401, url
        assert r.json()["error"] == "not_authenticated"


def test_a_template_of_another_child_is_not_reachable_through_own_child(
    api_a, enrolled_child_a, child_b
):
    from biometrics.services import photo_enrol
    from tests.factories import TEST_ACTOR

    photo_enrol(
        student=child_b, data=demo_photos.astronaut_face(), actor=TEST_ACTOR, process_now=True
    )
    other = FaceTemplate.objects.get(student=child_b)
    r = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/templates/{other.pk}/")
    assert r.status_code == 404


@pytest.mark.parametrize(
    "url",
    ["/api/v1/children/not-a-uuid/", "/api/v1/children/00000000-0000-0000-0000-000000000000/"],
)
def test_unknown_child_is_404_json(api_a, url):
    r = api_a.get(url)
    assert r.status_code == 404


def test_staff_session_without_guardian_gets_403(client, django_user_model, child_a):
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)
    r = client.get("/api/v1/children/")
    assert r.status_code == 403
    assert r.json()["error"] == "permission_denied"


def test_openapi_schema_and_docs_are_served(db, client):
    schema = client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/auth/magic-link/",
        "/api/v1/auth/token/",
        "/api/v1/children/",
        "/api/v1/children/{child_id}/",
        "/api/v1/children/{child_id}/templates/{template_id}/",
        "/api/v1/children/{child_id}/photos/{photo_id}/",
    ]:
        assert path in paths
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
