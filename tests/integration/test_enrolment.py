"""End to end with real processes: a Celery worker computes templates on the `faces` queue and
pushes copies to a reference holder running as its own process.

Runs against the embedded default (SQLite file + filesystem broker) and, when DATABASE_URL and
CELERY_BROKER_URL point at them, PostgreSQL + Redis.
"""

import numpy as np
import pytest

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify
from biometrics.models import FaceTemplate, Photo, PhotoStatus, TemplateCopy
from biometrics.selectors import template_embedding
from biometrics.services import photo_enrol

from ..factories import TEST_ACTOR
from ..processes import wait_for
from .conftest import register_holder
from .test_erasure_faults import wait_verified, withdraw

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_enrolment_is_computed_by_the_worker_and_copied_to_the_holder(stack, child_a):
    holder_proc = stack.holder("holder-a")
    register_holder(child_a.school, holder_proc, "Gate controller")
    photo = photo_enrol(student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    assert photo.status == PhotoStatus.PENDING

    def pushed():
        return TemplateCopy.objects.filter(
            template__student=child_a, status=TemplateCopy.Status.STORED
        ).exists()

    try:
        wait_for(pushed, timeout=60, what="the template copy to reach the holder")
    except TimeoutError:
        pytest.fail("worker log:\n" + stack.worker.log()[-4000:])

    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.ENROLLED
    template = FaceTemplate.objects.get(student=child_a)
    held = holder_proc.info["client"].get_subject(str(child_a.subject_id))
    assert held is not None
    (copy,) = held["templates"]
    assert copy["template"] == str(template.pk)
    assert np.allclose(copy["embedding"], template_embedding(template))
    # the holder knows the child only by pseudonym
    assert child_a.name not in holder_proc.log()
    assert str(child_a.pk) not in str(held)


def test_no_biometric_data_travels_on_the_broker(stack, child_a):
    """Tasks carry ids only: the worker's log of received tasks shows no embedding or image."""
    photo = photo_enrol(student=child_a, data=demo_photos.astronaut_face(), actor=TEST_ACTOR)
    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).status != PhotoStatus.PENDING,
        timeout=60,
        what="the photo to be processed",
    )
    template = FaceTemplate.objects.get(photo=photo)
    first_number = f"{template_embedding(template)[0]:.6f}"
    log = stack.worker.log()
    assert str(photo.pk) in log or "photo_process_task" in log
    assert first_number not in log


def test_a_child_erased_then_consented_again_is_enrolled_by_the_worker_under_a_new_pseudonym(
    stack, child_a, api_a
):
    """Withdrawal, a verified erasure, a new grant: the worker computes the new template and
    copies it to the holder under the child's new pseudonym; the old one stays gone."""
    holder_proc = stack.holder("holder-a")
    register_holder(child_a.school, holder_proc, "Gate controller")
    holder = holder_proc.info["client"]

    def enrolled_and_copied(photo_id):
        wait_for(
            lambda: TemplateCopy.objects.filter(template__photo_id=photo_id, status="stored"),
            timeout=60,
            what="the template copy to reach the holder",
        )

    first = photo_enrol(student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    enrolled_and_copied(first.pk)
    old = str(child_a.subject_id)
    erasure_id = withdraw(api_a, child_a)
    wait_verified(erasure_id, stack)
    assert holder.get_subject(old) is None

    r = api_a.post(
        f"/api/v1/children/{child_a.pk}/consents/",
        {"purpose": "gate_access", "decision": "grant", "notice_version": 1},
        format="json",
    )
    assert r.json()["status"] == "active"
    second = photo_enrol(student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    try:
        enrolled_and_copied(second.pk)
    except TimeoutError:
        pytest.fail("worker log:\n" + stack.worker.log()[-4000:])

    child_a.refresh_from_db()
    new = str(child_a.subject_id)
    assert new != old
    template = FaceTemplate.objects.get(student=child_a)
    (copy,) = holder.get_subject(new)["templates"]
    assert copy["template"] == str(template.pk)
    assert holder.get_subject(old) is None
    assert old not in set(holder.iter_subjects())
    match = identify(
        school=child_a.school,
        purpose=child_a.school.purposes.get(code="gate_access"),
        embedding=embedding_from_photo(demo_photos.grace_hopper_half()),
        device="Gate",
    )
    assert match is not None and match.student_id == child_a.pk
