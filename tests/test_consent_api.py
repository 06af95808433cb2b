"""Consent through the parent API and page, receipts, and what consent changes downstream:
identification obeys it at once, lost consent opens an erasure, an ended purpose loses its
recognition events (docs/consent-rule.md)."""

import io

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.models import ErasureRequest, RecognitionEvent
from consent.models import ConsentDecision, Decision
from consent.rules import active_purpose_codes
from consent.services import child_refusal_record, consent_decide
from portal.auth import api_key_create

from .conftest import bearer_client
from .factories import TEST_ACTOR, grant, guardian, link

KANTARA = {
    "version",
    "jurisdiction",
    "consentTimestamp",
    "collectionMethod",
    "consentReceiptID",
    "language",
    "piiPrincipalId",
    "piiControllers",
    "policyUrl",
    "services",
    "sensitive",
    "spiCat",
}
ISO_27560 = {
    "schema_version",
    "record_id",
    "pii_principal_id",
    "privacy_notice",
    "language",
    "purpose",
    "pii_information",
    "pii_controllers",
    "storage_locations",
    "retention_period",
    "jurisdiction",
    "recipient_third_parties",
    "withdrawal_method",
    "pii_type",
    "party",
    "event_time",
    "validity_duration",
    "entity_id",
    "event_type",
    "event_state",
}


def decide(api, child, purpose, decision, version=1):
    return api.post(
        f"/api/v1/children/{child.pk}/consents/",
        {"purpose": purpose, "decision": decision, "notice_version": version},
        format="json",
    )


@pytest.fixture
def gate(school):
    _, secret = api_key_create(school=school, scopes=["identify"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def identify(gate, embedding, purpose="gate_access"):
    return gate.post(
        "/api/v1/identify/",
        {"embedding": [float(x) for x in embedding], "purpose": purpose, "device": "Gate 1"},
        format="json",
    )


def test_get_consents_shape(api_a, child_a):
    r = api_a.get(f"/api/v1/children/{child_a.pk}/consents/")
    assert r.status_code == 200
    gate_access = next(p for p in r.json()["purposes"] if p["code"] == "gate_access")
    for field in (
        "code",
        "name",
        "status",
        "reason",
        "notice_version",
        "notice_sha256",
        "notice_text",
        "decisions",
    ):
        assert field in gate_access
    assert gate_access["status"] == "active"
    assert gate_access["decisions"][0]["decision"] == "grant"


def test_grant_returns_status_and_a_full_receipt(api_a, child_a):
    r = decide(api_a, child_a, "attendance", "grant")
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "active"
    assert body["erasure_id"] is None
    receipt = body["receipt"]
    assert KANTARA <= set(receipt)
    assert ISO_27560 <= set(receipt["iso27560"])
    assert receipt["piiPrincipalId"] == str(child_a.subject_id)
    assert receipt["iso27560"]["event_state"] == "ConsentGiven"
    assert "Child A" not in str(receipt)
    decision = ConsentDecision.objects.get(receipt_id=receipt["consentReceiptID"])
    assert decision.notice_sha256 == receipt["noticeSha256"]
    assert decision.ip_hash and "127.0.0.1" not in decision.ip_hash
    download = api_a.get(
        f"/api/v1/children/{child_a.pk}/consents/receipts/{receipt['consentReceiptID']}/"
    )
    assert download.status_code == 200
    assert download.json() == receipt


def test_a_bundled_decision_is_refused(api_a, child_a):
    r = api_a.post(
        f"/api/v1/children/{child_a.pk}/consents/",
        {"purpose": ["gate_access", "attendance"], "decision": "grant", "notice_version": 1},
        format="json",
    )
    assert r.status_code == 400
    assert r.json()["error"] == "bundled_consent"
    assert ConsentDecision.objects.filter(student=child_a).count() == 1


def test_a_grant_on_a_stale_notice_is_400(api_a, child_a, purposes):
    from consent.services import notice_publish

    notice_publish(purpose=purposes["attendance"], text="v2", actor=TEST_ACTOR)
    r = decide(api_a, child_a, "attendance", "grant", version=1)
    assert r.status_code == 400
    assert r.json()["error"] == "stale_notice"
    assert decide(api_a, child_a, "attendance", "grant", version=2).status_code == 201


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"purpose": "canteen", "decision": "grant", "notice_version": 1}, "unknown_purpose"),
        ({"purpose": "gate_access", "decision": "maybe"}, "invalid"),
        ({"decision": "grant"}, "invalid"),
    ],
)
def test_bad_decisions_are_400(api_a, child_a, body, code):
    r = api_a.post(f"/api/v1/children/{child_a.pk}/consents/", body, format="json")
    assert r.status_code == 400
    assert r.json()["error"] == code


def test_wrong_parent_cannot_decide_or_read(api_b, child_b, child_a):
    assert decide(api_b, child_a, "gate_access", "withdraw").status_code == 404
    assert api_b.get(f"/api/v1/children/{child_a.pk}/consents/").status_code == 404
    assert active_purpose_codes(child_a) == {"gate_access"}


def test_guardian_without_parental_responsibility_cannot_decide(child_a):
    carer = guardian("carer@example.com")
    link(carer, child_a, responsible=False)
    r = decide(bearer_client(carer), child_a, "gate_access", "withdraw")
    assert r.status_code == 403
    assert r.json()["error"] == "not_responsible"


def test_two_guardians_one_objects_then_lifts_it(child_a, purposes, parent_a):
    second = guardian("second@example.com")
    link(second, child_a)
    api_second = bearer_client(second)
    r = decide(api_second, child_a, "gate_access", "object")
    assert r.json()["status"] == "inactive"
    assert not active_purpose_codes(child_a)
    r = decide(api_second, child_a, "gate_access", "grant")
    assert r.json()["status"] == "active"


def test_the_childs_refusal_wins_whatever_the_parents_do(child_a, purposes, parent_a, api_a):
    child_refusal_record(student=child_a, actor=TEST_ACTOR, note="shook head")
    assert not active_purpose_codes(child_a)
    r = decide(api_a, child_a, "gate_access", "grant")
    assert r.json()["status"] == "inactive"
    second = guardian("second@example.com")
    link(second, child_a)
    decide(bearer_client(second), child_a, "gate_access", "grant")
    assert not active_purpose_codes(child_a)


def test_withdrawal_stops_identification_before_the_request_returns(api_a, enrolled_child_a, gate):
    probe = embedding_from_photo(demo_photos.grace_hopper_half())
    first = identify(gate, probe)
    assert first.status_code == 200
    assert first.json()["match"]["student_id"] == str(enrolled_child_a.pk)
    assert RecognitionEvent.objects.filter(student=enrolled_child_a).count() == 1

    r = decide(api_a, enrolled_child_a, "gate_access", "withdraw")
    assert r.status_code == 201
    assert r.json()["status"] == "inactive"
    # Same test, no sleep: the very next request no longer finds the child.
    after = identify(gate, probe)
    assert after.status_code == 200
    assert after.json() == {"match": None}
    assert r.json()["erasure_id"]  # nothing active any more → everything is to be erased
    assert ErasureRequest.objects.filter(pk=r.json()["erasure_id"]).exists()


def test_identification_only_for_the_asked_purpose(enrolled_child_a, gate):
    probe = embedding_from_photo(demo_photos.grace_hopper())
    assert identify(gate, probe, purpose="attendance").json() == {"match": None}
    assert not RecognitionEvent.objects.exists()


def test_a_stranger_matches_nobody_and_logs_nothing(enrolled_child_a, gate):
    stranger = embedding_from_photo(demo_photos.astronaut_face())
    assert identify(gate, stranger).json() == {"match": None}
    assert not RecognitionEvent.objects.exists()


def test_identification_from_an_image(enrolled_child_a, gate):
    r = gate.post(
        "/api/v1/identify/",
        {
            "image": io.BytesIO(demo_photos.grace_hopper_half()),
            "purpose": "gate_access",
            "device": "Gate 2",
        },
        format="multipart",
    )
    assert r.status_code == 200
    assert r.json()["match"]["student_id"] == str(enrolled_child_a.pk)
    assert RecognitionEvent.objects.get().device == "Gate 2"


@pytest.mark.parametrize(
    "body",
    [
        {"purpose": "gate_access", "embedding": [0.1] * 127},
        {"purpose": "gate_access", "embedding": ["x"] * 128},
        {"purpose": "gate_access", "embedding": [1e9] * 128},
        {"purpose": "canteen", "embedding": [0.1] * 128},
        {"embedding": [0.1] * 128},
    ],
    ids=["short", "strings", "huge", "unknown-purpose", "no-purpose"],
)
def test_bad_identify_requests_are_400(gate, school, purposes, body):
    r = gate.post("/api/v1/identify/", body, format="json")
    assert r.status_code == 400
    assert r.json()["error"]


def test_an_ended_purpose_loses_its_events_while_others_stay(enrolled_child_a, purposes, parent_a):
    grant(enrolled_child_a, purposes["attendance"], parent_a)
    for purpose in purposes.values():
        RecognitionEvent.objects.create(
            student=enrolled_child_a,
            purpose=purpose,
            device="d",
            distance=0.3,
            at=timezone.now(),
        )
    consent_decide(
        student=enrolled_child_a,
        purpose=purposes["attendance"],
        guardian=parent_a,
        decision=Decision.WITHDRAW,
        notice_version=1,
    )
    left = set(RecognitionEvent.objects.values_list("purpose__code", flat=True))
    assert left == {"gate_access"}
    assert not ErasureRequest.objects.exists()


def test_parent_page_grant_and_withdraw_take_one_tap_each(web_a, child_a):
    url = f"/children/{child_a.pk}/consent/"
    r = web_a.post(url, {"purpose": "attendance", "decision": "grant", "notice_version": "1"})
    assert r.status_code == 302
    assert active_purpose_codes(child_a) == {"gate_access", "attendance"}
    page = web_a.get(f"/children/{child_a.pk}/").content.decode()
    assert page.count('value="withdraw"') == 2
    web_a.post(url, {"purpose": "attendance", "decision": "withdraw", "notice_version": "1"})
    assert active_purpose_codes(child_a) == {"gate_access"}
    bad = web_a.post(url, {"purpose": "attendance", "decision": "grant", "notice_version": "9"})
    assert bad.status_code == 302
    assert "not the current one" in web_a.get(bad["Location"]).content.decode()


def test_transparency_page_is_public_and_complete(client, school, purposes):
    school.dpo_name = "Dana Officer"
    school.save()
    r = client.get(f"/schools/{school.slug}/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "No emotion or expression analysis is done" in page
    assert "trained on adults" in page
    assert "mixes up children more easily" in page
    assert "0.6" in page
    assert "DPIA-gate_access" in page
    assert "A card instead." in page
    assert "Dana Officer" in page
    assert "Notice for gate_access v1" in page
    zh = client.get(f"/schools/{school.slug}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert 'lang="zh-hans"' in zh.content.decode()
    assert client.get("/schools/nope/").status_code == 404


def test_distance_of_a_match_is_real(api_a, enrolled_child_a, gate):
    probe = embedding_from_photo(demo_photos.grace_hopper_half())
    distance = identify(gate, probe).json()["match"]["distance"]
    assert 0 < distance < 0.6
    assert np.isclose(RecognitionEvent.objects.get().distance, distance, atol=1e-3)
