"""factory_boy factories and small builders for the consent and biometrics models."""

from __future__ import annotations

import factory
from django.utils import timezone

from consent.actors import Actor
from consent.models import Guardian, Purpose, School, Student
from consent.services import (
    consent_decide,
    guardian_get_or_create,
    guardianship_link,
    notice_publish,
)
from consent.status import consent_status_refresh_school

TEST_ACTOR = Actor.system("tests")


class SchoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = School
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"school-{n}")
    name = factory.Sequence(lambda n: f"School {n}")
    dpo_name = "Dana Officer"
    dpo_email = factory.LazyAttribute(lambda o: f"dpo@{o.slug}.example")


class StudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Student

    school = factory.SubFactory(SchoolFactory)
    external_id = factory.Sequence(lambda n: f"EXT-{n:05d}")
    name = factory.Sequence(lambda n: f"Child {n}")
    class_name = "Year 5"


def purpose_with_notice(school: School, code: str = "gate_access", *, enabled=True) -> Purpose:
    purpose = Purpose.objects.create(
        school=school,
        code=code,
        name=code.replace("_", " ").title(),
        description=f"Uses the face for {code}.",
        alternative="A card instead.",
        dpia_reference=f"DPIA-{code}",
    )
    notice_publish(purpose=purpose, text=f"Notice for {code} v1", actor=TEST_ACTOR)
    if enabled:
        purpose.enabled = True
        purpose.save(update_fields=["enabled"])
        consent_status_refresh_school(school)
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


def grant(student: Student, purpose: Purpose, g: Guardian, *, at=None):
    return consent_decide(
        student=student,
        purpose=purpose,
        guardian=g,
        decision="grant",
        notice_version=purpose.notices.order_by("-version").first().version,
        at=at or timezone.now(),
    )
