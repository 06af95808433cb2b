"""A child's own sign-in (docs/child-sign-in.md): staff issue a one-time link, the child opens
it, presses one button, and is signed in as themselves.

- A link is issued only for a child at or above the school's competence age (and with a known
  date of birth): `consent.services.age_check`. Only its SHA-256 is stored; a new link for the
  same child ends the ones before it, so a lost sheet is dealt with by printing a new one.
- Opening the link shows a page with one button; only its POST (`child_link_consume`) signs
  in, so a QR scanner's preview uses nothing up. Apps exchange the link's token at
  `POST /api/v1/auth/token/` for a bearer token, as parents do.
- The child signs in as a `ChildAccount`: a Django user of its own kind (`consent.accounts`:
  `child:<hex>`, no password, never staff, never a guardian's). `student_for_user` is the only
  way from an account to a child: it answers for a child account alone, and only while the
  child is still at or above the competence age.

Parents' links, sessions and tokens (`portal.auth`) are untouched by any of this.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from consent.accounts import child_username, is_child_account
from consent.actors import Actor
from consent.ages import is_competent
from consent.audit import audit_record
from consent.models import Student
from consent.services import age_check

from .models import ChildAccount, ChildLink


@dataclass(frozen=True)
class IssuedChildLink:
    student: Student
    token: str
    url: str
    expires_at: datetime


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def child_link_issue(
    *, student: Student, actor: Actor, at: datetime | None = None
) -> IssuedChildLink:
    """A new one-time sign-in link for the child (CHILD_LINK_TTL_SECONDS, default 7 days: it
    is printed and handed out in class).

    1. Refuse a child below the school's competence age, or whose date of birth is unknown
       (ConsentError `below_competence_age` / `no_date_of_birth`).
    2. End the child's earlier links not yet used.
    3. Store the new link's hash; audit it (the child's pseudonym, never the token or name).
    """
    now = at or timezone.now()
    age_check(student, now)
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        ended = ChildLink.objects.filter(
            student=student, used_at__isnull=True, expires_at__gt=now
        ).update(expires_at=now)
        link = ChildLink.objects.create(
            student=student,
            token_hash=_sha256(token),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.CHILD_LINK_TTL_SECONDS),
        )
        audit_record(
            "auth.child_link_issued",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"link": link.pk, "expires_at": link.expires_at.isoformat(), "ended": ended},
        )
    url = settings.SITE_URL.rstrip("/") + reverse("portal:child-link", args=[token])
    return IssuedChildLink(student=student, token=token, url=url, expires_at=link.expires_at)


def _usable(token: str, now: datetime) -> ChildLink | None:
    link = (
        ChildLink.objects.select_related("student__school")
        .filter(token_hash=_sha256(token))
        .first()
    )
    if link is None or link.used_at or link.expires_at <= now:
        return None
    # The school may have raised its competence age, or corrected a date of birth, since.
    return link if is_competent(link.student, now) else None


def child_link_valid(token: str) -> bool:
    """Whether the link would sign in now. Reads only: opening a link uses nothing up."""
    return _usable(token, timezone.now()) is not None


def child_link_consume(token: str) -> Student | None:
    """Use a child's link once: the child it signs in, or None (invalid, used, expired, or the
    child is no longer at or above the competence age)."""
    now = timezone.now()
    with transaction.atomic():
        link = _usable(token, now)
        if link is None:
            return None
        # Compare-and-set: of two simultaneous uses, exactly one wins.
        if not ChildLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
            return None
        student = link.student
        audit_record(
            "auth.child_signed_in",
            actor=Actor.child(student),
            school_id=student.school_id,
            subject=student.subject_id,
            data={"method": "child_link", "link": link.pk},
        )
    return student


def child_account(student: Student):
    """The child's own account (made the first time they sign in): a user that cannot sign in
    by password and is never staff."""
    found = ChildAccount.objects.select_related("user").filter(student=student).first()
    if found is not None:
        return found.user
    try:
        with transaction.atomic():
            user = get_user_model().objects.create(
                username=child_username(), password=make_password(None)
            )
            ChildAccount.objects.create(student=student, user=user)
    except IntegrityError:  # made by a simultaneous first sign-in
        return ChildAccount.objects.select_related("user").get(student=student).user
    return user


def student_for_user(user) -> Student | None:
    """The child a signed-in account is, while they are at or above the school's competence
    age; None for anyone else (a guardian, staff, nobody)."""
    if user is None or not user.is_authenticated or user.is_staff or user.is_superuser:
        return None
    if not is_child_account(user):
        return None
    try:
        student = Student.objects.select_related("school").get(child_account__user=user)
    except Student.DoesNotExist:
        return None
    return student if is_competent(student, timezone.now()) else None


def child_token_issue(*, student: Student) -> tuple[str, datetime]:
    """A bearer token for the child's account (API_TOKEN_TTL_SECONDS)."""
    row, token = AuthToken.objects.create(
        user=child_account(student), expiry=timedelta(seconds=settings.API_TOKEN_TTL_SECONDS)
    )
    return token, row.expiry


def child_token_revoke(*, token: AuthToken, student: Student) -> None:
    """Revoke the token presented (DELETE /api/v1/auth/token/): it stops working at once."""
    with transaction.atomic():
        deleted, _ = AuthToken.objects.filter(
            pk=token.pk, user__child_account__student=student
        ).delete()
        if deleted:
            audit_record(
                "auth.token_revoked",
                actor=Actor.child(student),
                school_id=student.school_id,
                subject=student.subject_id,
            )
