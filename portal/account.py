"""A guardian's own account: their address is theirs to change, and only theirs.

A change is asked for from the guardian's page, confirmed by a link mailed to the NEW address
(24 hours, once; opening it shows a page with one button and only its POST applies the change),
and the OLD address is told once it is done. Links are made and mails sent by a worker; the
broker carries only the change's id. Every step is audited (without the addresses).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue
from consent.languages import supported
from consent.mail import email_render
from consent.models import Guardian
from consent.services import guardian_update
from consent.texts import guardian_language

from .models import EmailChange, MagicLink

CONFIRM_TTL = timedelta(hours=24)
#: Registered in portal.tasks under these names; each takes an EmailChange id.
CONFIRM_TASK = "portal.tasks.email_change_confirm_task"
NOTICE_TASK = "portal.tasks.email_change_notice_task"

SAME_EMAIL = _("That is already your address.")
CHANGE_INVALID = _("This confirmation link is invalid, used already, or expired.")
EMAIL_TAKEN = _("Another account uses this address, so yours cannot change to it.")


class EmailChangeRefused(Exception):
    def __init__(self, code: str, detail) -> None:
        super().__init__(str(detail))
        self.code = code
        self.detail = detail


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def email_change_request(*, guardian: Guardian, new_email: str) -> EmailChange:
    """Ask to change this guardian's address; a worker mails the confirmation link to it."""
    new_email = new_email.strip().lower()
    if new_email == guardian.email:
        raise EmailChangeRefused("same_email", SAME_EMAIL)
    now = timezone.now()
    with transaction.atomic():
        change = EmailChange.objects.create(
            guardian=guardian,
            new_email=new_email,
            old_email=guardian.email,
            created_at=now,
            expires_at=now + CONFIRM_TTL,
        )
        audit_record(
            "account.email_change_requested",
            actor=Actor.guardian(guardian),
            data={"change": change.pk},
        )
        job_enqueue(CONFIRM_TASK, change.pk)
    return change


def email_change_confirm_send(*, change_id: int) -> bool:
    """The worker: make the confirmation link and mail it to the new address (once)."""
    change = EmailChange.objects.select_related("guardian").get(pk=change_id)
    if change.token_hash or change.confirmed_at or change.expires_at <= timezone.now():
        return False
    token = secrets.token_urlsafe(32)
    if not EmailChange.objects.filter(pk=change.pk, token_hash__isnull=True).update(
        token_hash=_sha256(token)
    ):
        return False  # another delivery of this task made it
    url = _site_url(reverse("portal:email-confirm", args=[token]))
    guardian = change.guardian
    subject, body = email_render(
        "portal/email/email_change_confirm",
        {"guardian": guardian, "url": url},
        language=guardian_language(guardian),
    )
    send_mail(subject, body, None, [change.new_email])
    return True


def _site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _pending(token: str) -> EmailChange | None:
    change = (
        EmailChange.objects.select_related("guardian__user")
        .filter(token_hash=_sha256(token), confirmed_at__isnull=True)
        .first()
    )
    return change if change and change.expires_at > timezone.now() else None


def email_change_valid(token: str) -> bool:
    """Whether the confirmation link would apply the change now (opening it uses nothing)."""
    return _pending(token) is not None


def email_change_confirm(*, token: str) -> Guardian:
    """Apply the change the link confirms (its POST). Returns the guardian, address changed.

    1. The link must be unused and at most 24 hours old; the address still free (no other
       guardian and no other account has it).
    2. Change the guardian's address (and their account's, which follows it).
    3. Links and other changes mailed before stop working: they went to the old address or
       name another one.
    4. Audit it, and queue the notice to the old address.
    """
    now = timezone.now()
    User = get_user_model()
    with transaction.atomic():
        change = _pending(token)
        if change is None:
            raise EmailChangeRefused("link_invalid", CHANGE_INVALID)
        guardian = change.guardian
        user = guardian.user
        new = change.new_email
        taken = (
            Guardian.objects.filter(email=new).exclude(pk=guardian.pk).exists()
            or User.objects.filter(username__iexact=new).exclude(pk=user.pk).exists()
        )
        if taken:
            raise EmailChangeRefused("email_taken", EMAIL_TAKEN)
        if not EmailChange.objects.filter(pk=change.pk, confirmed_at__isnull=True).update(
            confirmed_at=now
        ):
            raise EmailChangeRefused("link_invalid", CHANGE_INVALID)
        old = guardian.email
        guardian.email = new
        guardian.save(update_fields=["email"])
        if user.username == old:
            user.username = new
        user.email = new
        user.save(update_fields=["username", "email"])
        EmailChange.objects.filter(guardian=guardian, confirmed_at__isnull=True).update(
            expires_at=now
        )
        MagicLink.objects.filter(
            guardian=guardian, used_at__isnull=True, expires_at__gt=now
        ).update(expires_at=now)
        audit_record(
            "account.email_changed", actor=Actor.guardian(guardian), data={"change": change.pk}
        )
        job_enqueue(NOTICE_TASK, change.pk)
    return guardian


def email_change_notice_send(*, change_id: int) -> bool:
    """The worker: tell the old address its account moved, then forget the old address."""
    change = EmailChange.objects.select_related("guardian").get(pk=change_id)
    if not change.confirmed_at or not change.old_email:
        return False
    guardian = change.guardian
    subject, body = email_render(
        "portal/email/email_changed_notice",
        {"guardian": guardian, "new_email": _masked(change.new_email)},
        language=guardian_language(guardian),
    )
    send_mail(subject, body, None, [change.old_email])
    EmailChange.objects.filter(pk=change.pk).update(old_email="")
    return True


def _masked(email: str) -> str:
    """j•••@example.com: enough for the owner to recognise, not to read out."""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def email_change_pending(guardian: Guardian) -> EmailChange | None:
    """The guardian's newest change still waiting for its confirmation, if any."""
    return (
        EmailChange.objects.filter(
            guardian=guardian, confirmed_at__isnull=True, expires_at__gt=timezone.now()
        )
        .order_by("-created_at")
        .first()
    )


def language_choose(*, guardian: Guardian, language: str) -> Guardian:
    """The guardian chose the language they read Guardian in (pages on every device, emails):
    stored on their record, audited. One the portal does not have changes nothing."""
    chosen = supported(language)
    if chosen and chosen != guardian.language:
        guardian_update(guardian=guardian, language=chosen, actor=Actor.guardian(guardian))
    return guardian
