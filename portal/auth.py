"""Password-less sign-in, and the end of it.

- Sign-in links: a request only records an attempt and queues its id; a worker decides whether
  to mail a link and mails it (`magic_link_send`), so the answer, its time and the work done
  are the same whether or not the address is known. Opening a link shows a page with one
  button; only its POST (`magic_link_consume`) signs in, so a mail scanner burns nothing.
- Parents' bearer tokens are django-rest-knox tokens (only a digest is stored); revoking one,
  or signing out everywhere, deletes them.
- School API keys: created by command, revoked in admin, optionally expiring.

README "Sign-in and its limits" states the rate-limit policy implemented here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from consent.actors import SYSTEM, Actor
from consent.audit import audit_record
from consent.compiled import CompiledQuery
from consent.identifiers import hash_identifier
from consent.jobs import job_enqueue
from consent.languages import supported
from consent.mail import email_render
from consent.models import Guardian, School
from consent.texts import guardian_language

from .models import ApiKey, MagicLink, SignInAttempt

LINK_INVALID = "This sign-in link is invalid, used already, or expired. Ask for a new one."
#: Registered in portal.tasks under this name; it takes a SignInAttempt id.
SEND_TASK = "portal.tasks.magic_link_send_task"
HOUR = timedelta(hours=1)
# A key's last use is written at most this often (a gate camera asks many times a second).
LAST_USED_EVERY = timedelta(minutes=1)


class RateLimited(Exception):
    """This requester asked for too many links this hour; `retry_after` seconds until one more."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _safe_next(next_url: str) -> str:
    # Only local paths: never an open redirect.
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else ""


def client_ip(request) -> str:
    """The requester's address: REMOTE_ADDR, or, behind TRUSTED_PROXY_COUNT proxies of ours,
    the address the outermost of them saw (each appends to X-Forwarded-For; what a client
    writes there itself stays to the left and is never believed)."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if hops > 0 and len(forwarded) >= hops and forwarded[-hops]:
        return forwarded[-hops][:64]
    return request.META.get("REMOTE_ADDR", "")


def _is_staff_account(guardian: Guardian) -> bool:
    # A guardian's account is never a staff one; if one ever were, it never signs in by link.
    return guardian.user.is_staff or guardian.user.is_superuser


# --- Sign-in links ------------------------------------------------------------------------


@dataclass
class IssuedLink:
    token: str
    url: str
    expires_at: datetime
    id: int = 0


def magic_link_issue(
    *, guardian: Guardian, next_url: str = "", ip: str = "", ip_hash: str = ""
) -> IssuedLink:
    """A new one-time link for this guardian (15 minutes); only its SHA-256 is stored."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    link = MagicLink.objects.create(
        guardian=guardian,
        token_hash=_sha256(token),
        next_url=_safe_next(next_url),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.MAGIC_LINK_TTL_SECONDS),
        ip_hash=ip_hash or hash_identifier(ip),
    )
    url = settings.SITE_URL.rstrip("/") + reverse("portal:magic-link", args=[token])
    return IssuedLink(token=token, url=url, expires_at=link.expires_at, id=link.pk)


def magic_link_request(
    *, email: str, ip: str = "", next_url: str = "", language: str = ""
) -> SignInAttempt:
    """Queue a sign-in link for this address. The same work whether or not it is known.

    1. Refuse (RateLimited) a requester whose IP asked MAGIC_LINK_MAX_PER_IP times this hour:
       it depends on the requester only, never on the address.
    2. Record the attempt with the guardian the address names, if any (one lookup either way).
    3. Queue the sending worker with the attempt's id; the worker decides and mails.
    """
    now = timezone.now()
    ip_hash = hash_identifier(ip)
    if ip_hash:
        recent = SignInAttempt.objects.filter(ip_hash=ip_hash, at__gt=now - HOUR)
        if recent.count() >= settings.MAGIC_LINK_MAX_PER_IP:
            oldest = recent.order_by("at").values_list("at", flat=True)[0]
            raise RateLimited(max(1, int((oldest + HOUR - now).total_seconds()) + 1))
    guardian_id = (
        Guardian.objects.filter(email=email.strip().lower()).values_list("pk", flat=True).first()
    )
    with transaction.atomic():
        attempt = SignInAttempt.objects.create(
            ip_hash=ip_hash,
            at=now,
            guardian_id=guardian_id,
            next_url=_safe_next(next_url),
            language=supported(language),
        )
        job_enqueue(SEND_TASK, attempt.pk)
    return attempt


def magic_link_send(*, attempt_id: int) -> str:
    """The worker's half of a request: mail the link, unless there is nothing to send or a
    link that still works was sent to the address moments ago. Returns the outcome.

    1. An attempt handled already (a redelivered task) is left alone.
    2. Unknown address, or a staff account: nothing is sent.
    3. Held back: the newest link sent to this guardian less than the cool-down ago is still
       unused and alive (so the owner has one in their inbox); the cool-down doubles with each
       link sent in the past hour, up to MAGIC_LINK_COOLDOWN_MAX_SECONDS (< a link's life).
    4. Otherwise issue a link, mail it, and only then count it as sent.
    """
    attempt = SignInAttempt.objects.select_related("guardian__user").get(pk=attempt_id)
    if attempt.outcome != SignInAttempt.Outcome.QUEUED:
        return attempt.outcome
    guardian = attempt.guardian
    now = timezone.now()
    if guardian is None:
        outcome = SignInAttempt.Outcome.UNKNOWN
    elif _is_staff_account(guardian):
        outcome = SignInAttempt.Outcome.REFUSED
    elif _held_back(guardian, now):
        outcome = SignInAttempt.Outcome.HELD
    else:
        outcome = SignInAttempt.Outcome.SENT
    if outcome != SignInAttempt.Outcome.SENT or guardian is None:
        SignInAttempt.objects.filter(pk=attempt.pk).update(outcome=outcome)
        return outcome
    link = magic_link_issue(guardian=guardian, next_url=attempt.next_url, ip_hash=attempt.ip_hash)
    # The guardian's language if they chose one, else the one they asked in.
    language = guardian.language or attempt.language or guardian_language(guardian)
    context = {"guardian": guardian, "link": link}
    subject, body = email_render("portal/email/magic_link", context, language=language)
    send_mail(subject, body, None, [guardian.email])
    SignInAttempt.objects.filter(pk=attempt.pk).update(
        outcome=outcome, sent_at=timezone.now(), link_id=link.id
    )
    return outcome


def _held_back(guardian: Guardian, now: datetime) -> bool:
    sent = SignInAttempt.objects.filter(
        guardian=guardian, outcome=SignInAttempt.Outcome.SENT, sent_at__gt=now - HOUR
    )
    last = sent.select_related("link").order_by("-sent_at").first()
    if last is None or last.link is None or last.sent_at is None:
        return False
    if last.link.used_at is not None or last.link.expires_at <= now:
        return False  # the owner holds no working link: send them one
    cooldown = min(
        settings.MAGIC_LINK_COOLDOWN_SECONDS * 2 ** (sent.count() - 1),
        settings.MAGIC_LINK_COOLDOWN_MAX_SECONDS,
    )
    return last.sent_at > now - timedelta(seconds=cooldown)


def _usable_link(token: str, now: datetime) -> MagicLink | None:
    link = MagicLink.objects.select_related("guardian__user").filter(token_hash=_sha256(token))
    found = link.first()
    if found is None or found.used_at or found.expires_at <= now:
        return None
    return None if _is_staff_account(found.guardian) else found


def magic_link_valid(token: str) -> bool:
    """Whether the link would sign in now. Reads only: opening a link uses nothing up."""
    return _usable_link(token, timezone.now()) is not None


def magic_link_consume(token: str) -> tuple[Guardian, str] | None:
    """Use a link once. Returns (guardian, next url), or None if invalid, used or expired."""
    now = timezone.now()
    with transaction.atomic():
        link = _usable_link(token, now)
        if link is None:
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


# --- Parents' bearer tokens, and signing out ------------------------------------------------


def api_token_issue(*, guardian: Guardian) -> tuple[str, datetime]:
    """A bearer token for the API (API_TOKEN_TTL_SECONDS); returns it and when it expires."""
    row, token = AuthToken.objects.create(
        user=guardian.user, expiry=timedelta(seconds=settings.API_TOKEN_TTL_SECONDS)
    )
    return token, row.expiry


def api_token_revoke(*, token: AuthToken, guardian: Guardian) -> None:
    """Revoke the token presented (DELETE /api/v1/auth/token/): it stops working at once."""
    with transaction.atomic():
        deleted, _ = AuthToken.objects.filter(pk=token.pk, user=guardian.user).delete()
        if deleted:
            audit_record("auth.token_revoked", actor=Actor.guardian(guardian))


@dataclass(frozen=True)
class SignedOut:
    tokens: int
    links: int


def guardian_sign_out_everywhere(*, guardian: Guardian) -> SignedOut:
    """End every session and bearer token of this guardian, and every link not yet used.

    Sessions: Django checks each session against a hash of the account's password field;
    giving the (password-less) account a new unusable password changes it, so every session
    of the account, on any device, is refused at its next request.
    """
    now = timezone.now()
    with transaction.atomic():
        tokens, _ = AuthToken.objects.filter(user=guardian.user).delete()
        links = MagicLink.objects.filter(
            guardian=guardian, used_at__isnull=True, expires_at__gt=now
        ).update(expires_at=now)
        guardian.user.set_unusable_password()
        guardian.user.save(update_fields=["password"])
        audit_record(
            "auth.signed_out_everywhere",
            actor=Actor.guardian(guardian),
            data={"tokens": tokens, "links": links},
        )
    return SignedOut(tokens=tokens, links=links)


# --- School API keys ------------------------------------------------------------------------


def api_key_create(
    *,
    school: School,
    scopes: list[str],
    name: str = "",
    expires_at: datetime | None = None,
    actor: Actor = SYSTEM,
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
            expires_at=expires_at,
        )
        audit_record(
            "auth.api_key_created",
            actor=actor,
            school_id=school.pk,
            data={
                "id": key.pk,
                "prefix": prefix,
                "label": name,
                "scopes": key.scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
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


# Every gate request looks its key up: the SQL is built once (consent.compiled).
_key_by_hash = CompiledQuery(
    lambda key_hash: ApiKey.objects.select_related("school").filter(key_hash=key_hash),
    key_hash=ApiKey._meta.get_field("key_hash"),
)


def api_key_lookup(secret: str) -> ApiKey | None:
    """The live key with this secret (not revoked, not expired), its last use noted."""
    now = timezone.now()
    key = next(iter(_key_by_hash(key_hash=_sha256(secret))), None)
    if key is not None and (
        key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now)
    ):
        key = None
    if key is not None and (key.last_used_at is None or key.last_used_at <= now - LAST_USED_EVERY):
        # Conditional: of many requests in the same minute, one writes.
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_EVERY)
        ).update(last_used_at=now)
    return key
