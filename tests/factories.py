"""factory_boy factories and small builders for the consent and biometrics models."""

from __future__ import annotations

import time

import factory
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from consent.actors import Actor
from consent.models import (
    ConsentDecision,
    Guardian,
    Guardianship,
    NoticeDelivery,
    Purpose,
    School,
    StaffMembership,
    Student,
)
from consent.services import (
    consent_decide,
    dpia_sign_off,
    guardian_get_or_create,
    guardianship_link,
    notice_deliveries_send,
    notice_publish,
    purpose_create,
    purpose_update,
    school_create,
    staff_membership_create,
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


def dpo_of(school: School):
    """The school's data protection officer: a staff account with the DPO role there."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=f"dpo-{school.slug}", defaults={"is_staff": True, "first_name": "Dana"}
    )
    if created:
        staff_membership_create(
            user=user, school=school, role=StaffMembership.Role.DPO, actor=TEST_ACTOR
        )
    return user


def purpose_with_notice(
    school: School, code: str = "gate_access", *, enabled=True, signed_off=True
) -> Purpose:
    """A purpose with a notice, an alternative and a DPIA its DPO signed off (`signed_off`),
    enabled through `purpose_update` (which refuses without the sign-off)."""
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
    if signed_off:
        dpia_sign_off(purpose=purpose, signed_by=dpo_of(school), actor=TEST_ACTOR)
    if enabled:
        purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    return purpose


def guardian(email: str, name: str | None = None) -> Guardian:
    return guardian_get_or_create(email=email, name=name or email.split("@")[0].title())


def link(g: Guardian, student: Student, *, responsible: bool = True, notified: bool = True):
    """Link a guardian, which queues the school's notice. `notified`: the notice task runs
    here and now and the locmem mail backend accepts the email, so the guardian is notified
    as in production (`notices_deliver`); otherwise the notice stays queued, not sent."""
    row = guardianship_link(
        guardian=g, student=student, parental_responsibility=responsible, actor=TEST_ACTOR
    )
    if notified:
        notices_deliver(row)
    return row


def notices_deliver(*links: Guardianship, keep_mail: bool = False) -> list:
    """Run the notice task's service for these links' queued notices, as a worker would,
    with the test mail backend (locmem), and check each one was accepted (so a Notification
    was recorded). Fixtures' notices are taken back out of `mail.outbox` (`keep_mail=False`),
    so a test about another email sees only that one."""
    ids = list(
        NoticeDelivery.objects.filter(
            guardianship__in=links, status=NoticeDelivery.Status.PENDING
        ).values_list("pk", flat=True)
    )
    before = len(mail.outbox)
    report = notice_deliveries_send(delivery_ids=ids)
    # With a real worker running (integration tests), it may have taken a notice first: then
    # wait for its send to be recorded, as the test would for any worker's.
    taken = [pk for pk in ids if pk in report.skipped]
    deadline = time.monotonic() + 20
    while taken and time.monotonic() < deadline:
        sent = NoticeDelivery.objects.filter(pk__in=taken, status=NoticeDelivery.Status.SENT)
        taken = [pk for pk in taken if pk not in set(sent.values_list("pk", flat=True))]
        if taken:
            time.sleep(0.1)
    assert not taken and set(report.sent) | set(report.skipped) == set(ids), report
    if not keep_mail:
        del mail.outbox[before:]
    return ids


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
