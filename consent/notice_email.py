"""The school's written notice to one guardian about one child (PoFA s.26(2)), as an email in
the guardian's language: what is processed, each purpose with its name, description and
non-biometric alternative, the right to object and how, and how to sign in.

The school's own texts (purpose names, descriptions, alternatives) are as the school wrote
them; everything around them is translated (templates/consent/email/notice*.txt).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from .models import Guardianship, Purpose

TEMPLATE = "consent/email/notice.txt"
SUBJECT_TEMPLATE = "consent/email/notice_subject.txt"


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def notice_email(guardianship: Guardianship) -> EmailMessage:
    """The notice for this link, ready to send (not sent)."""
    guardian, student = guardianship.guardian, guardianship.student
    school = student.school
    purposes = [p for p in Purpose.objects.filter(school=school).order_by("code")]
    context = {
        "guardian": guardian,
        "student": student,
        "school": school,
        "purposes": [p for p in purposes if p.enabled],
        # Published but not yet in use: the parent learns of them now, and is asked later.
        "planned": [p for p in purposes if not p.enabled and p.notices.exists()],
        "sign_in_url": _site(reverse("portal:sign-in")),
        "transparency_url": _site(reverse("portal:transparency", args=[school.slug])),
    }
    with translation.override(guardian.language):
        subject = " ".join(render_to_string(SUBJECT_TEMPLATE, context).split())
        body = render_to_string(TEMPLATE, context)
    return EmailMessage(subject=subject, body=body, to=[guardian.email])
