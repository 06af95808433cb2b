"""Consent campaigns: every undecided guardian gets one email with a link to that decision, and
every guardian the school's written notice has not reached gets the notice again."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from django.core.mail import send_mass_mail
from django.db import transaction
from django.urls import reverse

from consent.actors import Actor
from consent.audit import audit_record
from consent.changes import audited_delete
from consent.mail import email_render
from consent.models import Decision, Guardianship, Purpose, School, Student, StudentStatus
from consent.rules import load_for_rule, purpose_statuses
from consent.services import notice_resend_unreached
from consent.texts import guardian_language, purpose_words

from .auth import magic_link_issue
from .models import ConsentCampaign

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def campaign_students(campaign: ConsentCampaign):
    students = Student.objects.filter(school=campaign.school, status=StudentStatus.ON_ROLL)
    if campaign.class_name:
        students = students.filter(class_name=campaign.class_name)
    return students


def campaign_create(
    *,
    school: School,
    purpose: Purpose,
    class_name: str = "",
    created_by: AbstractBaseUser | None = None,
    actor: Actor,
) -> ConsentCampaign:
    """Start a campaign: queue the notice again for every guardian it has not reached, email
    every notified undecided guardian now, and audit how many of each.

    The emails go out inside the transaction, as the staff member waits for the count; a
    rollback after them leaves only sign-in links that were never stored, which fail safely.
    """
    with transaction.atomic():
        campaign = ConsentCampaign.objects.create(
            school=school, purpose=purpose, class_name=class_name, created_by=created_by
        )
        sent = campaign_send(campaign)
        campaign.refresh_from_db()
        audit_record(
            "consent.campaign_sent",
            actor=actor,
            school_id=school.pk,
            data={
                "id": campaign.pk,
                "purpose": purpose.code,
                "class_name": class_name,
                "emails": sent,
                "notices": campaign.notices_resent,
            },
        )
    return campaign


def campaign_delete(*, campaign: ConsentCampaign, actor: Actor) -> None:
    """Delete the record of a campaign (its emails were sent; nothing else changes)."""
    audited_delete(
        campaign,
        action="consent.campaign_deleted",
        actor=actor,
        school_id=campaign.school_id,
        data={"purpose": campaign.purpose.code},
    )


def campaign_send(campaign: ConsentCampaign) -> int:
    """Reach every guardian of the campaign's children:

    1. Whom the school's written notice has not reached (no accepted email, no letter, no
       recorded exception, none on its way): the notice again, queued
       (`notice_resend_unreached`); their decision can wait until they have read it.
    2. Each notified guardian with parental responsibility who has not decided for the
       purpose: an email with a sign-in link to that decision. A guardian with a recorded
       exception (not found, welfare of the child...) is never contacted.

    Returns the decision emails sent; the notices queued are stored on the campaign."""
    students = list(campaign_students(campaign))
    links = Guardianship.objects.filter(student__in=students)
    resent = notice_resend_unreached(links=links)
    decided = set(
        campaign.purpose.decisions.filter(student__in=students, guardian__isnull=False).values_list(
            "student_id", "guardian_id"
        )
    )
    messages = []
    notified = (
        links.filter(parental_responsibility=True, notifications__isnull=False)
        .exclude(notification_exceptions__isnull=False)
        .distinct()
        .select_related("guardian", "student")
    )
    school = campaign.school
    purpose = Purpose.objects.prefetch_related("texts").get(pk=campaign.purpose_id)
    for link in notified:
        if (link.student_id, link.guardian_id) in decided:
            continue
        next_url = reverse("portal:child", args=[link.student_id]) + "#purposes"
        issued = magic_link_issue(guardian=link.guardian, next_url=next_url)
        language = guardian_language(link.guardian, school=school)
        subject, body = email_render(
            "portal/email/campaign",
            {
                "guardian": link.guardian,
                "school": school,
                "purpose": purpose_words(purpose, language),
                "url": issued.url,
            },
            language=language,
        )
        messages.append((subject, body, None, [link.guardian.email]))
    if messages:
        send_mass_mail(messages, fail_silently=False)
    ConsentCampaign.objects.filter(pk=campaign.pk).update(
        emails_sent=len(messages), notices_resent=len(resent)
    )
    return len(messages)


def campaign_coverage(campaign: ConsentCampaign) -> Counter:
    """granted / objected / undecided / child_refused, per child, for the campaign's purpose."""
    students = campaign_students(campaign)
    loaded = load_for_rule(students.values("pk"))
    counts: Counter = Counter()
    for student in loaded.values():
        status = next(s for s in purpose_statuses(student) if s.code == campaign.purpose.code)
        if status.reason == "child_refused":
            counts["child_refused"] += 1
        elif status.reason in ("guardian_objected", "guardian_withdrew"):
            counts["objected"] += 1
        elif status.active or any(
            d.decision == Decision.GRANT and d.purpose_id == campaign.purpose_id
            for d in student.decisions.all()
        ):
            counts["granted"] += 1
        else:
            counts["undecided"] += 1
    return counts
