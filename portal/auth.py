"""Password-less sign-in: one-time links by email, bearer tokens for the API."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from consent.actors import SYSTEM, Actor
from consent.audit import audit_record
from consent.identifiers import hash_identifier
from consent.models import Guardian, School

from .models import ApiKey, ApiToken, MagicLink, SignInAttempt

LINK_INVALID = "This sign-in link is invalid, used already, or expired. Ask for a new one."


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _safe_next(next_url: str) -> str:
    # Only local paths: never an open redirect.
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else ""


@dataclass
class IssuedLink:
    token: str
    url: str
    expires_at: datetime


def magic_link_issue(*, guardian: Guardian, next_url: str = "", ip: str = "") -> IssuedLink:
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    link = MagicLink.objects.create(
        guardian=guardian,
        token_hash=_sha256(token),
        next_url=_safe_next(next_url),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.MAGIC_LINK_TTL_SECONDS),
        ip_hash=hash_identifier(ip),
    )
    url = settings.SITE_URL.rstrip("/") + reverse("portal:magic-link", args=[token])
    return IssuedLink(token=token, url=url, expires_at=link.expires_at)


def rate_limited(*, email: str, ip: str) -> bool:
    since = timezone.now() - timedelta(hours=1)
    recent = SignInAttempt.objects.filter(at__gte=since)
    return recent.filter(
        email_hash=hash_identifier(email)
    ).count() >= settings.MAGIC_LINK_MAX_PER_EMAIL or (
        ip and recent.filter(ip_hash=hash_identifier(ip)).count() >= settings.MAGIC_LINK_MAX_PER_IP
    )


def magic_link_request(*, email: str, ip: str = "", next_url: str = "") -> None:
    """Email a sign-in link if the address belongs to a guardian. Same outcome either way.

    The caller always answers the same (202 / "check your email"), so nobody can learn which
    addresses are registered; rate limits apply to unknown addresses too.
    """
    email = email.strip().lower()
    if rate_limited(email=email, ip=ip):
        return
    SignInAttempt.objects.create(
        email_hash=hash_identifier(email), ip_hash=hash_identifier(ip), at=timezone.now()
    )
    guardian = Guardian.objects.filter(email=email).first()
    if guardian is None:
        return
    link = magic_link_issue(guardian=guardian, next_url=next_url, ip=ip)
    with translation.override(guardian.language):
        body = render_to_string("portal/email/magic_link.txt", {"guardian": guardian, "link": link})
        subject = render_to_string("portal/email/magic_link_subject.txt").strip()
    send_mail(subject, body, None, [guardian.email])


def magic_link_consume(token: str) -> tuple[Guardian, str] | None:
    """Use a link once. Returns (guardian, next url), or None if invalid, used or expired."""
    now = timezone.now()
    with transaction.atomic():
        link = (
            MagicLink.objects.select_related("guardian").filter(token_hash=_sha256(token)).first()
        )
        if link is None or link.used_at or link.expires_at <= now:
            return None
        # Compare-and-set: of two simultaneous uses, exactly one wins.
        if not MagicLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
            return None
        audit_record(
            "auth.signed_in",
            actor=Actor.guardian(link.guardian),
            data={"method": "magic_link"},
        )
    return link.guardian, link.next_url


def api_token_issue(*, guardian: Guardian) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    expires = now + timedelta(seconds=settings.API_TOKEN_TTL_SECONDS)
    ApiToken.objects.create(
        guardian=guardian, token_hash=_sha256(token), created_at=now, expires_at=expires
    )
    return token, expires


def api_token_guardian(token: str) -> Guardian | None:
    row = (
        ApiToken.objects.select_related("guardian")
        .filter(token_hash=_sha256(token), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    return row.guardian if row else None


def api_key_create(
    *, school: School, scopes: list[str], name: str = "", actor: Actor = SYSTEM
) -> tuple[ApiKey, str]:
    """A school-scoped key; returns it with its secret, which is shown once and stored only as
    its SHA-256 (the audit row has the key's prefix, never the secret)."""
    unknown = set(scopes) - set(ApiKey.SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(ApiKey.SCOPES)}")
    prefix = secrets.token_hex(4)
    secret = f"gk_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            school=school,
            name=name,
            prefix=prefix,
            key_hash=_sha256(secret),
            scopes=sorted(set(scopes)),
        )
        audit_record(
            "auth.api_key_created",
            actor=actor,
            school_id=school.pk,
            data={"id": key.pk, "prefix": prefix, "label": name, "scopes": key.scopes},
        )
    return key, secret


def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke a key at once (it is kept, revoked, for the audit trail). Revoking a revoked key
    changes nothing."""
    with transaction.atomic():
        # Compare-and-set: of two revocations, one is recorded.
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            audit_record(
                "auth.api_key_revoked",
                actor=actor,
                school_id=key.school_id,
                data={"id": key.pk, "prefix": key.prefix},
            )
    key.refresh_from_db()
    return key


def api_key_lookup(secret: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("school")
        .filter(key_hash=_sha256(secret), revoked_at__isnull=True)
        .first()
    )
