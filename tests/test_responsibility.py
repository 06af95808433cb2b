"""Parental responsibility decides access (issue 12 item 3, SPEC §8): a guardian linked without
it sees the child's name and purposes, and nothing of the biometric data; every export download
asks again, at that moment, whether the guardian is still linked and responsible."""

import pytest
from django.test import Client

from biometrics.erasure import erasure_open
from biometrics.models import ErasureRequest, FaceTemplate, Photo
from consent.models import AuditEvent, ConsentDecision, Guardianship
from consent.services import guardianship_unlink, guardianship_update
from portal.exports import export_build, export_request

from .conftest import bearer_client
from .factories import TEST_ACTOR, guardian, link

NOT_RESPONSIBLE = {"error": "not_responsible"}


@pytest.fixture
def carer(enrolled_child_a):
    """A step-parent linked to Child A without parental responsibility."""
    g = guardian("carer@example.com", "Step Parent")
    link(g, enrolled_child_a, responsible=False)
    return g


@pytest.fixture
def ready_export(enrolled_child_a, parent_a):
    export = export_request(student=enrolled_child_a, guardian=parent_a)
    return export_build(export_id=export.pk)


def _ids(child):
    return (
        Photo.objects.filter(student=child).first().pk,
        FaceTemplate.objects.filter(student=child).first().pk,
    )


def test_without_responsibility_the_api_shows_name_and_purposes_only(
    db, carer, enrolled_child_a, parent_a
):
    """Attack 8a: such a guardian saw photos, templates and events and asked for exports."""
    api = bearer_client(carer)
    child = enrolled_child_a
    photo, template = _ids(child)
    listed = api.get("/api/v1/children/")
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()] == ["Child A"]
    assert {p["code"]: p["status"] for p in listed.json()[0]["purposes"]} == {
        "attendance": "inactive",
        "gate_access": "active",
    }
    consents = api.get(f"/api/v1/children/{child.pk}/consents/")
    assert consents.status_code == 200
    assert {p["code"] for p in consents.json()["purposes"]} == {"attendance", "gate_access"}

    erasure = erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
    export = export_request(student=child, guardian=parent_a)
    refused = [
        ("get", f"/api/v1/children/{child.pk}/"),  # photos, templates, events, access log
        ("get", f"/api/v1/children/{child.pk}/photos/{photo}/"),
        ("get", f"/api/v1/children/{child.pk}/templates/{template}/"),
        ("post", f"/api/v1/children/{child.pk}/exports/"),
        ("post", f"/api/v1/children/{child.pk}/erasures/"),
        ("get", f"/api/v1/erasures/{erasure.pk}/"),
        ("get", f"/api/v1/erasures/{erasure.pk}/receipt/"),
    ]
    for method, url in refused:
        r = getattr(api, method)(url)
        assert r.status_code == 403, url
        assert r.json()["error"] == "not_responsible", url
        assert "parental responsibility" in r.json()["detail"], url
    # Another parent's export of this child: not the carer's either (404, as before).
    assert api.get(f"/api/v1/exports/{export.pk}/").status_code == 404
    # Nothing was looked at, asked for or erased on their word.
    assert (
        not AuditEvent.objects.filter(actor_id=str(carer.pk))
        .exclude(action__startswith="auth.")
        .exists()
    )
    assert ErasureRequest.objects.filter(student=child).count() == 1


def test_without_responsibility_delete_everything_is_403_not_500(db, carer, enrolled_child_a):
    """Attack 8b: their "delete everything" was a 500 (consent_decide refused inside it)."""
    api = bearer_client(carer)
    r = api.post(f"/api/v1/children/{enrolled_child_a.pk}/erasures/")
    assert r.status_code == 403 and r.json()["error"] == "not_responsible"
    web = Client()
    web.force_login(carer.user)
    for method in ("get", "post"):
        page = getattr(web, method)(f"/children/{enrolled_child_a.pk}/delete/")
        assert page.status_code == 403, method
        assert "parental responsibility" in page.content.decode()
    assert not ErasureRequest.objects.filter(student=enrolled_child_a).exists()
    assert not ConsentDecision.objects.filter(guardian=carer).exists()


def test_without_responsibility_the_page_shows_purposes_and_says_why(db, carer, enrolled_child_a):
    web = Client()
    web.force_login(carer.user)
    child = enrolled_child_a
    photo, template = _ids(child)
    page = web.get(f"/children/{child.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Child A" in html and "Gate Access" in html
    assert "without parental responsibility" in html
    for hidden in ('id="photos"', 'id="templates"', 'id="events"', 'id="access"', "/thumbnail/"):
        assert hidden not in html, hidden
    # No grant or withdraw for them; objecting is theirs too, and the page offers it.
    assert 'value="grant"' not in html and 'value="withdraw"' not in html
    assert 'name="decision" value="object"' in html
    r = web.post(f"/children/{child.pk}/consent/", {"purpose": "gate_access", "decision": "object"})
    assert r.status_code == 302
    assert child.decisions.filter(guardian=carer, decision="object").exists()
    for url in (
        f"/children/{child.pk}/?show={template}",
        f"/children/{child.pk}/photos/{photo}/thumbnail/",
    ):
        r = web.get(url)
        assert r.status_code == 403, url
        assert "without parental responsibility" in r.content.decode(), url
    r = web.post(f"/children/{child.pk}/export/")
    assert r.status_code == 403
    erasure = erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
    assert web.get(f"/erasures/{erasure.pk}/").status_code == 403


def test_a_guardian_with_responsibility_keeps_every_door(db, parent_a, enrolled_child_a, carer):
    api = bearer_client(parent_a)
    photo, template = _ids(enrolled_child_a)
    for url in (
        f"/api/v1/children/{enrolled_child_a.pk}/",
        f"/api/v1/children/{enrolled_child_a.pk}/photos/{photo}/",
        f"/api/v1/children/{enrolled_child_a.pk}/templates/{template}/",
    ):
        assert api.get(url).status_code == 200, url


def test_grant_and_withdraw_need_responsibility(db, carer, enrolled_child_a, purposes):
    api = bearer_client(carer)
    version = purposes["gate_access"].notices.order_by("-version").first().version
    for decision in ("grant", "withdraw"):
        r = api.post(
            f"/api/v1/children/{enrolled_child_a.pk}/consents/",
            {"purpose": "gate_access", "decision": decision, "notice_version": version},
            format="json",
        )
        assert r.status_code == 403 and r.json()["error"] == "not_responsible"


def test_without_responsibility_a_guardian_may_object(db, carer, enrolled_child_a):
    r = bearer_client(carer).post(
        f"/api/v1/children/{enrolled_child_a.pk}/consents/",
        {"purpose": "gate_access", "decision": "object"},
        format="json",
    )
    assert r.status_code == 201


# --- Every download asks again ----------------------------------------------------------------


def test_an_unlinked_guardian_cannot_download_an_export_built_before(
    db, parent_a, enrolled_child_a, ready_export
):
    """Attack 8c: a guardian unlinked from the child still downloaded the export built before."""
    api = bearer_client(parent_a)
    web = Client()
    web.force_login(parent_a.user)
    url = f"/api/v1/exports/{ready_export.pk}/download/"
    assert api.get(url).status_code == 200
    guardianship_unlink(
        guardianship=Guardianship.objects.get(guardian=parent_a, student=enrolled_child_a),
        actor=TEST_ACTOR,
    )
    for client, path in (
        (api, url),
        (api, f"/api/v1/exports/{ready_export.pk}/"),
        (web, f"/exports/{ready_export.pk}/download/"),
        (web, f"/exports/{ready_export.pk}/"),
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert not hasattr(r, "streaming_content"), path


def test_losing_responsibility_stops_the_download_with_403(
    db, parent_a, enrolled_child_a, ready_export
):
    guardianship_update(
        guardianship=Guardianship.objects.get(guardian=parent_a, student=enrolled_child_a),
        parental_responsibility=False,
        actor=TEST_ACTOR,
    )
    r = bearer_client(parent_a).get(f"/api/v1/exports/{ready_export.pk}/download/")
    assert r.status_code == 403 and r.json() == {
        **NOT_RESPONSIBLE,
        "detail": r.json()["detail"],
    }
    web = Client()
    web.force_login(parent_a.user)
    page = web.get(f"/exports/{ready_export.pk}/download/")
    assert page.status_code == 403
    assert "parental responsibility" in page.content.decode()
    downloads = AuditEvent.objects.filter(action="export.downloaded").count()
    assert downloads == 0
