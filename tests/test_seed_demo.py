"""seed_demo: the demo school with real faces, idempotent."""

from django.core.management import call_command

from biometrics.models import FaceTemplate, Holder, Photo, RecognitionEvent, TemplateCopy
from consent.models import Guardian, School, Student
from consent.rules import active_purpose_codes


def counts():
    return [
        m.objects.count()
        for m in (
            School,
            Student,
            Guardian,
            Photo,
            FaceTemplate,
            RecognitionEvent,
            Holder,
            TemplateCopy,
        )
    ]


def test_seed_demo_builds_the_demo_and_is_idempotent(db):
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first

    school = School.objects.get(slug="demo")
    assert set(school.purposes.values_list("code", flat=True)) == {
        "gate_access",
        "attendance",
        "library",
    }
    parent = Guardian.objects.get(email="parent@example.com")
    parent2 = Guardian.objects.get(email="parent2@example.com")
    assert parent.students.count() == 3
    (shared,) = parent2.students.all()
    assert shared.guardians.count() == 2
    for student in parent.students.all():
        if student.photos.exists():
            assert active_purpose_codes(student)
            assert student.templates.count() == student.photos.filter(status="enrolled").count()
    assert FaceTemplate.objects.count() >= 3
    assert RecognitionEvent.objects.exists()
    holder = Holder.objects.get(school=school)
    # every template is queued for the reference holder
    assert TemplateCopy.objects.filter(holder=holder).count() == FaceTemplate.objects.count()
