"""factory_boy factories and small builders for the consent and biometrics models."""

from __future__ import annotations

import factory
from django.utils import timezone

from consent.actors import Actor
from consent.models import ConsentDecision, Guardian, Purpose, School, Student
from consent.services import (
    consent_decide,
    guardian_get_or_create,
    guardianship_link,
    notice_publish,
    purpose_create,
    purpose_update,
    school_create,
    student_create,
)

TEST_ACTOR = Actor.system("tests")


class SchoolFactory(factory.django.DjangoModelFactory):
    """Made by `school_create` (or the school with that slug, if there is one)."""

    class Meta:
        model = School

    slug = factory.Sequence(lambda n: f"school-{n}")
    name = factory.Sequence(lambda n: f"School {n}")
    dpo_name = "Dana Officer"
    dpo_email = factory.LazyAttribute(lambda o: f"dpo@{o.slug}.example")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        existing = School.objects.filter(slug=kwargs["slug"]).first()
        return existing or school_create(actor=TEST_ACTOR, **kwargs)


class StudentFactory(factory.django.DjangoModelFactory):
    """Made by `student_create`, which stores the child's consent statuses."""

    class Meta:
        model = Student

    school = factory.SubFactory(SchoolFactory)
    external_id = factory.Sequence(lambda n: f"EXT-{n:05d}")
    name = factory.Sequence(lambda n: f"Child {n}")
    class_name = "Year 5"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return student_create(actor=TEST_ACTOR, **kwargs)


def purpose_with_notice(school: School, code: str = "gate_access", *, enabled=True) -> Purpose:
    purpose = purpose_create(
        school=school,
        code=code,
        name=code.replace("_", " ").title(),
        description=f"Uses the face for {code}.",
        alternative="A card instead.",
        dpia_reference=f"DPIA-{code}",
        actor=TEST_ACTOR,
    )
    notice_publish(purpose=purpose, text=f"Notice for {code} v1", actor=TEST_ACTOR)
    if enabled:
        purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    return purpose


def guardian(email: str, name: str | None = None) -> Guardian:
    return guardian_get_or_create(email=email, name=name or email.split("@")[0].title())


def link(g: Guardian, student: Student, *, responsible: bool = True, notified: bool = True):
    return guardianship_link(
        guardian=g,
        student=student,
        parental_responsibility=responsible,
        notified_by="email" if notified else "",
        actor=TEST_ACTOR,
    )


def grant(student: Student, purpose: Purpose, g: Guardian, *, at=None) -> ConsentDecision:
    """A guardian's grant on the purpose's current notice; returns the recorded decision."""
    return consent_decide(
        student=student,
        purpose=purpose,
        guardian=g,
        decision="grant",
        notice_version=purpose.notices.order_by("-version").first().version,
        at=at or timezone.now(),
    ).record
