"""Revocation (issue 12 item 4): a parent's bearer token is revoked by DELETE, signing out ends
the session, "sign out everywhere" ends every session and token of the guardian; school API
keys are listed with created / last used / expiry, expire, and are revoked in admin."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from consent.models import AuditEvent
from portal.auth import api_key_create, api_token_issue, magic_link_issue
from portal.models import ApiKey

from .conftest import bearer_client

TOKEN = "/api/v1/auth/token/"


def _bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_delete_revokes_the_presented_token_and_only_it(db, parent_a, child_a):
    """Attack 5: `DELETE /api/v1/auth/token/` was a 405 and a token lived its 24 hours."""
    token, _ = api_token_issue(guardian=parent_a)
    other, _ = api_token_issue(guardian=parent_a)  # the same parent's other app
    api = _bearer(token)
    assert api.get("/api/v1/children/").status_code == 200

    r = api.delete(TOKEN)
    assert r.status_code == 204
    refused = api.get("/api/v1/children/")
    assert refused.status_code == 401 and refused.json()["error"] == "authentication_failed"
    assert api.delete(TOKEN).status_code == 401  # a second DELETE: the token is gone
    assert _bearer(other).get("/api/v1/children/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.token_revoked").count() == 1


def test_delete_without_a_bearer_token_is_401(db, web_a):
    assert APIClient().delete(TOKEN).status_code == 401
    r = web_a.delete(TOKEN)  # a web session has no token to revoke
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Bearer"


def test_web_sign_out_ends_the_session_for_good(db, parent_a, child_a):
    browser = Client()
    browser.post(f"/sign-in/{magic_link_issue(guardian=parent_a).token}/")
    cookie = browser.cookies["sessionid"].value
    assert browser.get("/children/").status_code == 200
    browser.post("/sign-out/")
    replay = Client()
    replay.cookies["sessionid"] = cookie  # the old cookie, kept by someone
    assert replay.get("/children/").status_code == 302


def test_sign_out_everywhere_ends_every_session_and_token(db, parent_a, parent_b, child_a):
    phone, laptop = Client(), Client()
    for browser in (phone, laptop):
        browser.post(f"/sign-in/{magic_link_issue(guardian=parent_a).token}/")
        assert browser.get("/children/").status_code == 200
    apps = [bearer_client(parent_a), bearer_client(parent_a)]
    pending = magic_link_issue(guardian=parent_a)  # mailed, not used yet
    bystander = bearer_client(parent_b)

    page = phone.get("/account/").content.decode()
    assert "Sign out everywhere" in page
    r = phone.post("/account/sign-out-everywhere/")
    assert r.status_code == 302 and r["Location"] == "/sign-in/"

    assert phone.get("/children/").status_code == 302
    assert laptop.get("/children/").status_code == 302  # the other device too
    for api in apps:
        assert api.get("/api/v1/children/").status_code == 401
    assert Client().post(f"/sign-in/{pending.token}/").status_code == 410
    assert not AuthToken.objects.filter(user=parent_a.user).exists()
    assert bystander.get("/api/v1/children/").status_code == 200  # another family: untouched
    event = AuditEvent.objects.get(action="auth.signed_out_everywhere")
    assert event.actor_id == str(parent_a.pk) and event.data["tokens"] == 2
    # Signing in again works as before.
    again = Client()
    again.post(f"/sign-in/{magic_link_issue(guardian=parent_a).token}/")
    assert again.get("/children/").status_code == 200


def test_sign_out_everywhere_is_a_post_for_a_guardian(db, web_a, client):
    assert web_a.get("/account/sign-out-everywhere/").status_code == 405
    assert Client().post("/account/sign-out-everywhere/").status_code == 302  # to sign in


def test_knox_token_admin_is_not_offered(db):
    assert AuthToken not in admin.site._registry


# --- School API keys --------------------------------------------------------------------------


@pytest.fixture
def key(school):
    return api_key_create(school=school, scopes=["roster"], name="Gate")


def _staff_call(secret: str):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return api.post("/api/v1/staff/students/", {}, format="json")


def test_an_expired_key_is_refused(db, school):
    row, secret = api_key_create(
        school=school, scopes=["roster"], expires_at=timezone.now() + timedelta(days=1)
    )
    assert _staff_call(secret).status_code == 400  # accepted; the empty body is invalid
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = _staff_call(secret)
    assert r.status_code == 401 and r.json()["error"] == "authentication_failed"


def test_last_use_is_written_at_most_once_a_minute(db, key):
    row, secret = key
    assert row.last_used_at is None
    _staff_call(secret)
    first = ApiKey.objects.get(pk=row.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        _staff_call(secret)
    assert ApiKey.objects.get(pk=row.pk).last_used_at == first  # within the minute: unchanged
    assert not [q for q in queries if q["sql"].startswith('UPDATE "portal_apikey"')]
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=first - timedelta(minutes=2))
    _staff_call(secret)
    assert ApiKey.objects.get(pk=row.pk).last_used_at > first


def test_admin_lists_keys_with_created_last_used_and_expiry(db, admin_client, key):
    _staff_call(key[1])
    page = admin_client.get("/admin/portal/apikey/").content.decode()
    for column in ("Created at", "Last used at", "Expires at", "Revoked at"):
        assert column in page


def test_create_api_key_can_make_an_expiring_key(db, school, capsys):
    call_command(
        "create_api_key", "--school", school.slug, "--scopes", "roster", "--expires-days", "30"
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    row = ApiKey.objects.get()
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert _staff_call(secret).status_code == 400
