"""The portal tells people what the apps below it announce (it owns the emails and the URLs)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.dispatch import receiver
from django.urls import reverse

from biometrics.models import ErasureRequest
from biometrics.signals import erasure_sealed
from consent.mail import email_render
from consent.models import Guardianship
from consent.texts import guardian_language


@receiver(erasure_sealed)
def on_erasure_sealed(sender, *, requests: list[ErasureRequest], **kwargs) -> None:
    """Email every guardian of each child: the erasure is verified, here is the receipt."""
    urls = {
        r.student_id: settings.SITE_URL.rstrip("/") + reverse("portal:erasure", args=[r.pk])
        for r in requests
        if r.student_id is not None
    }
    links = Guardianship.objects.filter(student_id__in=urls).select_related(
        "guardian", "student__school"
    )
    for link in links.order_by("id"):
        guardian = link.guardian
        subject, body = email_render(
            "portal/email/erasure_done",
            {"guardian": guardian, "url": urls[link.student_id]},
            language=guardian_language(guardian, school=link.student.school),
        )
        send_mail(subject, body, None, [guardian.email])
