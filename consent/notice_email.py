"""The school's written notice to one guardian about one child (PoFA s.26(2)), as an email in
the guardian's language: what is processed, each purpose with its name, description and
non-biometric alternative, the right to object and how, and how to sign in.

The school's own texts (purpose names, descriptions, alternatives) are in the guardian's
language where the school wrote them in it (`consent.texts`, else its default language);
everything around them is translated (templates/consent/email/notice*.txt).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from .mail import email_message
from .models import Guardianship, Purpose
from .texts import guardian_language, purpose_words

TEMPLATE = "consent/email/notice"


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def notice_email(guardianship: Guardianship) -> EmailMessage:
    """The notice for this link, ready to send (not sent)."""
    guardian, student = guardianship.guardian, guardianship.student
    school = student.school
    language = guardian_language(guardian, school=school)
    purposes = list(Purpose.objects.filter(school=school).prefetch_related("texts", "notices"))
    purposes.sort(key=lambda p: p.code)
    context = {
        "guardian": guardian,
        "student": student,
        "school": school,
        "purposes": [purpose_words(p, language) for p in purposes if p.enabled],
        # Published but not yet in use: the parent learns of them now, and is asked later.
        "planned": [
            purpose_words(p, language) for p in purposes if not p.enabled and p.notices.all()
        ],
        "sign_in_url": _site(reverse("portal:sign-in")),
        "transparency_url": _site(reverse("portal:transparency", args=[school.slug])),
    }
    return email_message(TEMPLATE, context, language=language, to=guardian.email)
