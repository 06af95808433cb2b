"""The parent's use cases (portal/parent.py), called directly as both doors call them."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.db.models import Case, When
from django.http import Http404

from biometrics import demo_photos
from biometrics.erasure import erasure_step_run
from biometrics.models import FaceTemplate, Photo
from biometrics.receipts import receipt_verify
from biometrics.selectors import held_data, template_embedding
from biometrics.services import erasure_request_by_parent
from consent.models import AuditEvent, ConsentDecision, Method
from consent.services import PURPOSE_UNKNOWN, ConsentError
from portal.parent import (
    ErasureNotFinished,
    child_get,
    children_list,
    consent_receipt_get,
    decision_record,
    erasure_receipt_get,
    photo_shown,
    template_shown,
)


def decide(guardian, child, code="gate_access", decision="withdraw", version=None):
    return decision_record(
        guardian=guardian,
        child=child,
        purpose_code=code,
        decision=decision,
        notice_version=version,
        method=Method.WEB,
        ip="192.0.2.1",
        user_agent="tests",
    )


def access_log(child, guardian) -> list[dict]:
    return held_data(child, viewer_guardian_id=guardian.pk)["access_log"]


def views_logged(child) -> int:
    return AuditEvent.objects.filter(
        subject=str(child.subject_id), action__endswith="_viewed"
    ).count()


def test_child_get_is_the_parents_own_child_and_a_404_for_another_parent(
    parent_a, parent_b, child_a, child_b
):
    assert child_get(guardian=parent_a, child_id=child_a.pk) == child_a
    with pytest.raises(Http404):
        child_get(guardian=parent_b, child_id=child_a.pk)
    with pytest.raises(Http404):
        child_get(guardian=parent_a, child_id=uuid.uuid4())


def test_children_list_shows_only_the_parents_children_with_statuses(
    parent_a, parent_b, child_a, child_b
):
    rows = children_list(guardian=parent_b)
    assert [r.child.name for r in rows] == ["Child B"]
    assert {s.code: s.status for s in rows[0].statuses} == {
        "gate_access": "active",
        "attendance": "inactive",
    }


def test_decision_record_reports_the_status_now_and_the_erasure_it_started(
    parent_a, enrolled_child_a
):
    child_a = enrolled_child_a
    outcome = decide(parent_a, child_a, "gate_access", "withdraw")
    assert outcome.record.decision == "withdraw"
    assert outcome.record.receipt == ConsentDecision.objects.get(pk=outcome.record.pk).receipt
    assert outcome.status.code == "gate_access"
    assert outcome.status.status == "inactive"
    # gate_access was the only active purpose: withdrawing it erases the child's face.
    assert outcome.erasure is not None
    assert outcome.erasure.student_id == child_a.pk


def test_decision_record_grant_keeps_the_child_and_starts_no_erasure(parent_a, child_a, purposes):
    version = purposes["attendance"].notices.get().version
    outcome = decide(parent_a, child_a, "attendance", "grant", version)
    assert outcome.status.status == "active"
    assert outcome.erasure is None


def test_decision_record_for_another_parents_child_is_a_404_and_records_nothing(parent_b, child_a):
    before = ConsentDecision.objects.filter(student=child_a).count()
    with pytest.raises(Http404):
        decide(parent_b, child_a)
    assert ConsentDecision.objects.filter(student=child_a).count() == before


def test_decision_record_for_an_unknown_purpose_says_so(parent_a, child_a):
    with pytest.raises(ConsentError) as raised:
        decide(parent_a, child_a, "no_such_purpose")
    assert (raised.value.code, raised.value.detail) == ("unknown_purpose", PURPOSE_UNKNOWN)


@pytest.mark.parametrize("via", ["web", "api"])
def test_template_shown_returns_the_numbers_and_logs_one_look_the_parent_sees(
    parent_a, enrolled_child_a, via
):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    before = views_logged(enrolled_child_a)
    shown = template_shown(
        guardian=parent_a, child=enrolled_child_a, template_id=template.pk, via=via
    )
    assert shown.template == template
    assert np.allclose(shown.embedding, template_embedding(template))
    assert views_logged(enrolled_child_a) == before + 1
    newest = access_log(enrolled_child_a, parent_a)[0]
    assert (newest["actor"], newest["action"]) == ("You", "biometrics.template_viewed")
    event = AuditEvent.objects.filter(action="biometrics.template_viewed").get()
    assert event.data == {"template": str(template.pk), "via": via}


@pytest.mark.parametrize("via", ["web", "api"])
def test_photo_shown_returns_the_original_bytes_and_logs_one_look_the_parent_sees(
    parent_a, enrolled_child_a, via
):
    photo = Photo.objects.get(student=enrolled_child_a)
    before = views_logged(enrolled_child_a)
    shown = photo_shown(guardian=parent_a, child=enrolled_child_a, photo_id=photo.pk, via=via)
    assert shown.photo == photo
    assert shown.data == demo_photos.grace_hopper()
    assert views_logged(enrolled_child_a) == before + 1
    newest = access_log(enrolled_child_a, parent_a)[0]
    assert (newest["actor"], newest["action"]) == ("You", "biometrics.photo_viewed")
    event = AuditEvent.objects.filter(action="biometrics.photo_viewed").get()
    assert event.data == {"photo": str(photo.pk), "via": via}


def test_another_parent_cannot_look_at_a_template_or_photo_and_nothing_is_logged(
    parent_b, enrolled_child_a
):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    photo = Photo.objects.get(student=enrolled_child_a)
    before = views_logged(enrolled_child_a)
    with pytest.raises(Http404):
        template_shown(
            guardian=parent_b, child=enrolled_child_a, template_id=template.pk, via="api"
        )
    with pytest.raises(Http404):
        photo_shown(guardian=parent_b, child=enrolled_child_a, photo_id=photo.pk, via="api")
    assert views_logged(enrolled_child_a) == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_unknown_or_malformed_template_or_photo_id_is_a_404(parent_a, enrolled_child_a, bad_id):
    with pytest.raises(Http404):
        template_shown(guardian=parent_a, child=enrolled_child_a, template_id=bad_id, via="web")
    with pytest.raises(Http404):
        photo_shown(guardian=parent_a, child=enrolled_child_a, photo_id=bad_id, via="web")


def test_consent_receipt_is_the_decisions_receipt_and_a_404_for_another_parent(
    parent_a, parent_b, child_a
):
    record = ConsentDecision.objects.get(student=child_a)
    receipt = consent_receipt_get(guardian=parent_a, child=child_a, receipt_id=record.receipt_id)
    assert receipt.body == record.receipt
    assert receipt.content_disposition == (
        f'attachment; filename="consent-receipt-{record.receipt_id}.json"'
    )
    with pytest.raises(Http404):
        consent_receipt_get(guardian=parent_b, child=child_a, receipt_id=record.receipt_id)


def test_erasure_receipt_waits_for_the_erasure_and_is_a_404_for_another_parent(
    parent_a, parent_b, child_a
):
    erasure = erasure_request_by_parent(student=child_a, guardian=parent_a)
    with pytest.raises(ErasureNotFinished):
        erasure_receipt_get(guardian=parent_a, erasure_id=erasure.pk)
    with pytest.raises(Http404):
        erasure_receipt_get(guardian=parent_b, erasure_id=erasure.pk)
    for step in erasure.steps.order_by(Case(When(kind="key", then=1), default=0)):
        erasure_step_run(step_id=step.pk)  # what the workers do: every step, the key last
    receipt = erasure_receipt_get(guardian=parent_a, erasure_id=erasure.pk)
    assert receipt_verify(receipt.body)
    assert receipt.content_disposition == (
        f'attachment; filename="erasure-receipt-{erasure.pk}.json"'
    )
    with pytest.raises(Http404):
        erasure_receipt_get(guardian=parent_b, erasure_id=erasure.pk)
