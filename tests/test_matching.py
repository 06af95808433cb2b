"""Identification: the nearest face decides (SPEC §2, §8, §9; biometrics/matching.py).

Among every template the school holds, the nearest within the school's tolerance names the one
candidate. If that child's purpose is not active, or another child's template lies within the
school's margin, the answer is no match and nothing is written — never the next child.
"""

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify, match_index_bump
from biometrics.models import RecognitionEvent
from biometrics.services import photo_enrol, template_create
from consent.models import AuditEvent, School
from consent.services import consent_decide, school_create, school_policy_update
from portal.auth import api_key_create

from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, grant, guardian, link
from .factories import purpose_with_notice as make_purpose
from .test_consent_status import page_form

RNG = np.random.default_rng(13)


def gate_for(school: School) -> APIClient:
    _, secret = api_key_create(school=school, scopes=["identify"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def ask(gate: APIClient, embedding, purpose="gate_access"):
    return gate.post(
        "/api/v1/identify/",
        {"embedding": [float(x) for x in embedding], "purpose": purpose, "device": "Gate 1"},
        format="json",
    )


def directions(n: int) -> list[np.ndarray]:
    """n orthonormal 128-d directions: points at chosen distances from a probe, and from each
    other, are then exact."""
    q, _ = np.linalg.qr(RNG.normal(size=(128, n)))
    return [q[:, i] for i in range(n)]


def a_face() -> np.ndarray:
    return RNG.normal(0, 0.12, 128)  # norm ≈ 1.36, like the model's embeddings


def consenting_child(school, purposes, email: str, code="gate_access"):
    child = StudentFactory(school=school)
    parent = guardian(email)
    link(parent, child)
    grant(child, purposes[code], parent)
    return child


@pytest.fixture
def gate(school):
    return gate_for(school)


def test_the_nearest_child_without_consent_means_no_match_and_no_event(
    school, purposes, parent_a, parent_b, gate
):
    """Real faces: the child at the gate (Grace Hopper's portrait, enrolled through
    face_recognition) has no gate consent; a consenting child's template lies within tolerance
    behind hers. Before, the gate was told the consenting child's name and an event recorded it."""
    at_gate = StudentFactory(school=school, name="At the gate")
    link(parent_a, at_gate)
    grant(at_gate, purposes["attendance"], parent_a)  # gate_access never granted
    photo_enrol(
        student=at_gate, data=demo_photos.grace_hopper(), actor=TEST_ACTOR, process_now=True
    )
    probe = embedding_from_photo(demo_photos.grace_hopper_half())
    behind = StudentFactory(school=school, name="Behind")
    link(parent_b, behind)
    grant(behind, purposes["gate_access"], parent_b)
    (away,) = directions(1)
    template_create(student=behind, photo=None, embedding=probe + 0.45 * away)
    mark = AuditEvent.objects.count()

    r = ask(gate, probe, "gate_access")

    assert r.status_code == 200
    assert r.json() == {"match": None}
    assert not RecognitionEvent.objects.exists()
    assert AuditEvent.objects.count() == mark  # a refusal records nothing about anyone
    # The same face for the purpose her parent consented to: she is the nearest, and matched.
    r = ask(gate, probe, "attendance")
    assert r.json()["match"]["student_id"] == str(at_gate.pk)
    assert r.json()["match"]["distance"] < 0.45 - school.face_match_margin
    assert list(RecognitionEvent.objects.values_list("student_id", "purpose__code")) == [
        (at_gate.pk, "attendance")
    ]


def test_the_nearest_child_whose_consent_was_withdrawn_is_not_replaced_by_the_next(
    school, purposes
):
    near = consenting_child(school, purposes, "near@example.com")
    next_ = consenting_child(school, purposes, "next@example.com")
    probe = a_face()
    u, v = directions(2)
    template_create(student=near, photo=None, embedding=probe + 0.2 * u)
    template_create(student=next_, photo=None, embedding=probe + 0.5 * v)
    gate = purposes["gate_access"]
    assert identify(school=school, purpose=gate, embedding=probe, device="d").student_id == near.pk
    parent = near.guardians.get()
    consent_decide(
        student=near, purpose=gate, guardian=parent, decision="withdraw", notice_version=1
    )
    assert identify(school=school, purpose=gate, embedding=probe, device="d") is None
    assert RecognitionEvent.objects.filter(student=next_).count() == 0


def test_two_childrens_templates_close_together_are_no_match(school, purposes, gate):
    a = consenting_child(school, purposes, "a@example.com")
    b = consenting_child(school, purposes, "b@example.com")
    probe = a_face()
    u, v, w = directions(3)
    template_create(student=a, photo=None, embedding=probe + 0.30 * u)
    template_create(student=b, photo=None, embedding=probe + 0.33 * v)  # 0.03 further: < 0.05
    assert school.face_match_margin == 0.05

    assert ask(gate, probe).json() == {"match": None}
    assert not RecognitionEvent.objects.exists()

    school_policy_update(school=school, face_match_margin=0.02, actor=TEST_ACTOR)
    match = ask(gate, probe).json()["match"]
    assert match["student_id"] == str(a.pk)
    assert match["distance"] == pytest.approx(0.30, abs=1e-4)
    # The same child's other templates never make a match ambiguous.
    school_policy_update(school=school, face_match_margin=0.05, actor=TEST_ACTOR)
    b.templates.all().delete()
    match_index_bump(school.pk, [b.pk])  # as the erasure's database step does
    template_create(student=a, photo=None, embedding=probe + 0.31 * w)
    assert ask(gate, probe).json()["match"]["student_id"] == str(a.pk)


@pytest.mark.parametrize(
    ("other", "matched"), [(0.62, False), (0.64, True)], ids=["within-margin", "beyond-margin"]
)
def test_another_childs_template_beyond_tolerance_still_counts_for_the_margin(
    school, purposes, other, matched
):
    """Nearest at 0.58 (tolerance 0.6): a child at 0.62 is as good a match; one at 0.64 is not."""
    a = consenting_child(school, purposes, "a@example.com")
    b = consenting_child(school, purposes, "b@example.com")
    probe = a_face()
    u, v = directions(2)
    template_create(student=a, photo=None, embedding=probe + 0.58 * u)
    template_create(student=b, photo=None, embedding=probe + other * v)
    found = identify(school=school, purpose=purposes["gate_access"], embedding=probe, device="d")
    assert (found is not None and found.student_id == a.pk) is matched
    assert RecognitionEvent.objects.count() == int(matched)


def test_each_school_matches_at_its_own_tolerance(school, purposes, gate):
    other_school = SchoolFactory(slug="other-school")
    other_purposes = {"gate_access": make_purpose(other_school, "gate_access")}
    here = consenting_child(school, purposes, "here@example.com")
    there = consenting_child(other_school, other_purposes, "there@example.com")
    probe = a_face()
    u, v = directions(2)
    template_create(student=here, photo=None, embedding=probe + 0.45 * u)
    template_create(student=there, photo=None, embedding=probe + 0.45 * v)
    assert ask(gate, probe).json()["match"]["student_id"] == str(here.pk)

    school_policy_update(school=school, face_tolerance=0.4, actor=TEST_ACTOR)

    assert ask(gate, probe).json() == {"match": None}  # the next request reads the new value
    assert ask(gate_for(other_school), probe).json()["match"]["student_id"] == str(there.pk)
    assert RecognitionEvent.objects.filter(student=here).count() == 1


def test_a_new_school_starts_at_the_face_tolerance_setting(db, settings):
    settings.FACE_TOLERANCE = 0.55
    school = school_create(slug="new", name="New", actor=TEST_ACTOR)
    assert (school.face_tolerance, school.face_match_margin) == (0.55, 0.05)


@pytest.mark.parametrize(
    "fields",
    [
        {"face_tolerance": 0.61},
        {"face_tolerance": 0.29},
        {"face_tolerance": float("nan")},
        {"face_match_margin": 0.01},
        {"face_match_margin": 0.25},
    ],
    ids=["looser-than-the-model", "stricter-than-useful", "nan", "margin-too-small", "too-big"],
)
def test_tolerance_and_margin_outside_their_bounds_are_refused(school, fields):
    mark = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as caught:
        school_policy_update(school=school, actor=TEST_ACTOR, **fields)
    assert set(caught.value.message_dict) == set(fields)
    school.refresh_from_db()
    assert (school.face_tolerance, school.face_match_margin) == (0.6, 0.05)
    assert AuditEvent.objects.count() == mark


def test_a_stricter_tolerance_from_admin_is_audited_with_before_and_after(school, admin_client):
    page = reverse("admin:consent_school_change", args=[school.pk])
    form = page_form(admin_client, page)
    assert (form["face_tolerance"], form["face_match_margin"]) == ("0.6", "0.05")
    refused = admin_client.post(page, {**form, "face_tolerance": "0.7"})
    assert refused.status_code == 200
    assert "Between 0.3 and 0.6" in refused.content.decode()
    r = admin_client.post(page, {**form, "face_tolerance": "0.5", "face_match_margin": "0.08"})
    assert r.status_code == 302
    event = AuditEvent.objects.get(action="school.policy_changed")
    assert event.data["changes"] == {
        "face_tolerance": [0.6, 0.5],
        "face_match_margin": [0.05, 0.08],
    }


def test_the_transparency_page_publishes_tolerance_margin_and_the_caution(client, school):
    school_policy_update(
        school=school, face_tolerance=0.5, face_match_margin=0.08, actor=TEST_ACTOR
    )
    page = client.get(f"/schools/{school.slug}/").content.decode()
    assert "Tolerance: 0.5." in page
    assert "Ambiguity margin: 0.08." in page
    assert "tends to mix up children quite easily" in page
    assert "suggest a stricter (smaller) tolerance" in page
    assert "never told about the next-nearest child" in page
    zh = client.get(f"/schools/{school.slug}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "容差：0.5。" in zh and "歧义余量：0.08。" in zh


def test_the_index_takes_in_enrolments_and_erasures_made_since_it_was_built(school, purposes, gate):
    """A process's index, once built, takes in what changed: a child enrolled since is
    recognised, a template erased since is gone from it (its numbers with it)."""
    from biometrics import matching
    from biometrics.models import FaceTemplate

    first, second = (consenting_child(school, purposes, f"p{i}@example.com") for i in (1, 2))
    face_1, face_2 = a_face(), a_face()
    template_1 = template_create(student=first, photo=None, embedding=face_1)
    assert ask(gate, face_1).json()["match"]["student_id"] == str(first.pk)  # built here
    built = matching.match_index_for(school.pk)

    template_create(student=second, photo=None, embedding=face_2)
    assert ask(gate, face_2).json()["match"]["student_id"] == str(second.pk)
    FaceTemplate.objects.filter(pk=template_1.pk).delete()
    matching.match_index_bump(school.pk)
    assert ask(gate, face_1).json()["match"] is None

    refreshed = matching.match_index_for(school.pk)
    assert refreshed is not built
    assert template_1.pk not in set(refreshed.template_ids)
    assert list(refreshed.student_ids) == [second.pk]
    assert refreshed.columns.shape == (128, 1)


def test_a_child_enrolled_since_the_index_was_read_is_answered_not_the_next_nearest(
    school, purposes, gate
):
    """This process's index is searched before its version is read (in the same round trip
    as the candidate's rule rows): when it has moved, the candidate found may not be the
    nearest any more. A child enrolled since, nearer to the camera, is the answer; the child
    the old index would have named is not recorded."""
    from biometrics import matching

    probe = a_face()
    (away,) = directions(1)
    behind = consenting_child(school, purposes, "behind@example.com")
    template_create(
        student=behind, photo=None, embedding=probe + 0.6 * school.face_tolerance * away
    )
    assert ask(gate, probe).json()["match"]["student_id"] == str(behind.pk)  # index built
    built = matching.match_index_for(school.pk)

    at_gate = consenting_child(school, purposes, "at-gate@example.com")
    template_create(student=at_gate, photo=None, embedding=probe)

    assert matching._indexes[school.pk] is built  # this process's copy is behind
    answer = ask(gate, probe).json()["match"]
    assert answer["student_id"] == str(at_gate.pk)
    assert answer["distance"] == 0
    assert list(RecognitionEvent.objects.order_by("at").values_list("student", flat=True)) == [
        behind.pk,
        at_gate.pk,
    ]
    assert matching._indexes[school.pk] is not built


def _same_as_built(index, school_id: int) -> None:
    from biometrics.matching import _build

    built = _build(school_id, index.version)
    order = np.argsort([str(t) for t in index.template_ids])
    again = np.argsort([str(t) for t in built.template_ids])
    assert [index.template_ids[i] for i in order] == [built.template_ids[i] for i in again]
    assert np.array_equal(index.columns[:, order], built.columns[:, again])
    assert set(index.codes) == set(built.codes)


def test_after_an_erasure_each_process_reads_the_change_log_not_every_template(
    school, purposes, gate, monkeypatch
):
    """A news day: each erasure moves the school's index. A process takes in the children
    named in the change log (their templates as they are now), never comparing all of the
    school's template ids; the result is what a fresh build gives."""
    from biometrics import matching
    from biometrics.models import FaceTemplate, MatchIndexChange

    children = [consenting_child(school, purposes, f"p{i}@example.com") for i in range(4)]
    faces = [a_face() for _ in children]
    for child, face in zip(children, faces, strict=True):
        template_create(student=child, photo=None, embedding=face)
    assert ask(gate, faces[0]).json()["match"]["student_id"] == str(children[0].pk)

    def every_id(*args, **kwargs):
        raise AssertionError("compared every template id")

    monkeypatch.setattr(matching, "_compared", every_id)
    FaceTemplate.objects.filter(student=children[1]).delete()
    matching.match_index_bump(school.pk, [children[1].pk])  # as the erasure's database step
    second = template_create(student=children[2], photo=None, embedding=a_face())  # re-enrolled
    assert ask(gate, faces[1]).json()["match"] is None
    assert ask(gate, faces[3]).json()["match"]["student_id"] == str(children[3].pk)
    index = matching.match_index_for(school.pk)
    assert children[1].pk not in index.codes and second.pk in set(index.template_ids)
    assert MatchIndexChange.objects.filter(school=school, student_id=children[1].pk).exists()
    monkeypatch.undo()
    _same_as_built(index, school.pk)


def test_a_log_it_cannot_trust_makes_the_index_compare_every_template(school, purposes, gate):
    """A change not itemised, a log pruned past the index or rewritten (a database restored
    behind it): the process compares every template id, and the index is right again."""
    from datetime import timedelta

    from django.utils import timezone

    from biometrics import matching
    from biometrics.models import FaceTemplate, MatchIndexChange, MatchIndexVersion

    kids = [consenting_child(school, purposes, f"p{i}@example.com") for i in range(3)]
    faces = [a_face() for _ in kids]
    for child, face in zip(kids, faces, strict=True):
        template_create(student=child, photo=None, embedding=face)
    index = matching.match_index_for(school.pk)
    assert len(index.template_ids) == 3

    # Rewritten: the row the index last read now carries another version; a template went
    # without a logged change (only the version moved).
    MatchIndexChange.objects.filter(pk=index.seq).update(version="restored")
    FaceTemplate.objects.filter(student=kids[0]).delete()
    MatchIndexVersion.objects.filter(school=school).update(version="moved")
    assert ask(gate, faces[0]).json()["match"] is None
    index = matching.match_index_for(school.pk)
    assert kids[0].pk not in index.codes
    _same_as_built(index, school.pk)

    # Not itemised.
    FaceTemplate.objects.filter(student=kids[1]).delete()
    matching.match_index_bump(school.pk)
    assert kids[1].pk not in matching.match_index_for(school.pk).codes

    # Pruned: a bump deletes the rows older than CHANGES_KEPT; an index that has not read the
    # log for that long compares every id.
    MatchIndexChange.objects.update(at=timezone.now() - matching.CHANGES_KEPT - timedelta(1))
    matching.match_index_bump(school.pk, [kids[2].pk])
    assert list(MatchIndexChange.objects.values_list("student_id", flat=True)) == [kids[2].pk]
    index = matching.match_index_for(school.pk)
    stale = matching.replace(index, checked_at=timezone.now() - matching.CHANGES_KEPT)
    FaceTemplate.objects.filter(student=kids[2]).delete()
    MatchIndexVersion.objects.filter(school=school).update(version="moved again")
    assert kids[2].pk not in matching._refreshed(stale, school.pk, "moved again").codes
