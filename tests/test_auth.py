"""Sign-in: one-time links by email (15 minutes, single use, no enumeration, rate limited),
and the exchange of a magic token for an expiring bearer token."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from portal.auth import magic_link_issue
from portal.models import ApiToken, MagicLink


def _token_from_mail(message) -> str:
    url = next(line for line in message.body.splitlines() if "/sign-in/" in line)
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_magic_link_request_is_202_for_known_and_unknown_alike(db, parent_a):
    api = APIClient()
    known = api.post("/api/v1/auth/magic-link/", {"email": "parent.a@example.com"}, format="json")
    unknown = api.post("/api/v1/auth/magic-link/", {"email": "nobody@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [m.to for m in mail.outbox] == [["parent.a@example.com"]]


def test_magic_link_request_refuses_a_malformed_email(db):
    r = APIClient().post("/api/v1/auth/magic-link/", {"email": "not-an-email"}, format="json")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid"


def test_emailed_link_signs_in_once(db, client, parent_a):
    client.post("/sign-in/", {"email": "Parent.A@example.com"})
    token = _token_from_mail(mail.outbox[0])
    first = client.get(f"/sign-in/{token}/")
    assert first.status_code == 302 and first["Location"] == "/children/"
    assert client.get("/children/").status_code == 200
    client.logout()
    again = client.get(f"/sign-in/{token}/")
    assert again.status_code == 410
    assert client.get("/children/").status_code == 302  # back to sign-in


def test_sign_in_page_answers_the_same_for_unknown_addresses(db, client, parent_a):
    known = client.post("/sign-in/", {"email": "parent.a@example.com"})
    unknown = client.post("/sign-in/", {"email": "stranger@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert b"Check your email" in known.content and b"Check your email" in unknown.content


def test_link_expires_after_15_minutes(db, client, parent_a):
    link = magic_link_issue(guardian=parent_a)
    MagicLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/sign-in/{link.token}/").status_code == 410
    row = MagicLink.objects.get()
    assert row.expires_at - row.created_at <= timedelta(minutes=15, seconds=1)


def test_only_the_token_hash_is_stored(db, parent_a):
    link = magic_link_issue(guardian=parent_a)
    assert not MagicLink.objects.filter(token_hash=link.token).exists()
    assert link.token not in str(list(MagicLink.objects.values_list()))


def test_requests_are_rate_limited_per_address(db, parent_a, settings):
    api = APIClient()
    for _ in range(settings.MAGIC_LINK_MAX_PER_EMAIL + 3):
        r = api.post("/api/v1/auth/magic-link/", {"email": "parent.a@example.com"}, format="json")
        assert r.status_code == 202
    assert len(mail.outbox) == settings.MAGIC_LINK_MAX_PER_EMAIL


def test_next_url_is_local_only(db, client, parent_a):
    link = magic_link_issue(guardian=parent_a, next_url="https://evil.example/")
    assert client.get(f"/sign-in/{link.token}/")["Location"] == "/children/"


def test_token_exchange_gives_an_expiring_bearer_token(db, parent_a, child_a):
    link = magic_link_issue(guardian=parent_a)
    api = APIClient()
    r = api.post("/api/v1/auth/token/", {"magic_token": link.token}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"token", "expires_at"}
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert api.get("/api/v1/children/").status_code == 200
    # single use
    again = APIClient().post("/api/v1/auth/token/", {"magic_token": link.token}, format="json")
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_magic_token"
    # expiry
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = api.get("/api/v1/children/")
    assert expired.status_code == 401
    assert expired.json()["error"] == "authentication_failed"


@pytest.mark.parametrize("body", [{}, {"magic_token": ""}, {"magic_token": "nonsense"}])
def test_token_exchange_refuses_bad_input(db, body):
    r = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert r.status_code == 400
    assert "error" in r.json()


def test_magic_link_command_prints_a_working_url_and_token(db, client, parent_a, capsys):
    call_command("magic_link", "parent.a@example.com")
    url = capsys.readouterr().out.strip()
    assert url.startswith("http") and "/sign-in/" in url
    path = "/" + url.split("/", 3)[3]
    assert client.get(path).status_code == 302
    call_command("magic_link", "parent.a@example.com", "--token")
    token = capsys.readouterr().out.strip()
    assert "/" not in token
    r = APIClient().post("/api/v1/auth/token/", {"magic_token": token}, format="json")
    assert r.status_code == 200
