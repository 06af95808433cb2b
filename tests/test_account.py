"""A guardian's address is theirs (issue 12 item 1, the parent's side): they change it from their
own page, it applies only when the link mailed to the NEW address is used (24 hours, once, by
its POST), the OLD address is told, and every step is audited without the addresses."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from consent.models import AuditEvent
from portal.account import (
    CONFIRM_TASK,
    NOTICE_TASK,
    email_change_confirm_send,
    email_change_notice_send,
)
from portal.auth import magic_link_issue
from portal.models import EmailChange

from .factories import guardian

NEW = "new.address@example.org"


@pytest.fixture
def worker(sent_jobs):
    """Run what was queued, as the Celery worker would (only ids were queued)."""
    tasks = {CONFIRM_TASK: email_change_confirm_send, NOTICE_TASK: email_change_notice_send}

    def run():
        while sent_jobs:
            name, args = sent_jobs.pop(0)
            assert all(isinstance(a, int) for a in args), args
            tasks[name](change_id=args[0])

    return run


@pytest.fixture
def ask_change(web_a, worker, django_capture_on_commit_callbacks):
    def run(email: str = NEW):
        with django_capture_on_commit_callbacks(execute=True):
            r = web_a.post("/account/email/", {"email": email})
        worker()
        return r

    return run


def _link(message) -> str:
    url = next(line for line in message.body.splitlines() if "/account/email/" in line)
    return "/" + url.split("/", 3)[3]


def test_a_guardian_changes_their_address_by_the_link_to_the_new_one(
    db, web_a, parent_a, ask_change, worker, django_capture_on_commit_callbacks
):
    assert "parent.a@example.com" in web_a.get("/account/").content.decode()
    r = ask_change()
    assert r.status_code == 302 and r["Location"] == "/account/"
    assert [m.to for m in mail.outbox] == [[NEW]]
    parent_a.refresh_from_db()
    assert parent_a.email == "parent.a@example.com"  # nothing changes before the link is used

    path = _link(mail.outbox[0])
    stranger = Client()  # a scanner, or the parent on another device: opening changes nothing
    page = stranger.get(path)
    assert page.status_code == 200 and "Confirm my new address" in page.content.decode()
    parent_a.refresh_from_db()
    assert parent_a.email == "parent.a@example.com"

    with django_capture_on_commit_callbacks(execute=True):
        done = web_a.post(path)
    assert done.status_code == 302 and done["Location"] == "/account/"
    worker()
    parent_a.refresh_from_db()
    parent_a.user.refresh_from_db()
    assert parent_a.email == NEW and parent_a.user.email == NEW
    # The old address is told, with the new one masked; then forgotten.
    notice = mail.outbox[1]
    assert notice.to == ["parent.a@example.com"]
    assert "n•••@example.org" in notice.body and NEW not in notice.body
    assert EmailChange.objects.get().old_email == ""
    # Audited, without either address.
    actions = list(
        AuditEvent.objects.filter(actor_id=str(parent_a.pk), action__startswith="account.")
        .order_by("pk")
        .values_list("action", "data")
    )
    assert [a for a, _ in actions] == ["account.email_change_requested", "account.email_changed"]
    assert "example" not in repr(actions)
    # Once only.
    assert Client().post(path).status_code == 410
    assert Client().get(path).status_code == 410


def test_the_new_address_signs_in_and_the_old_links_stop(db, web_a, parent_a, ask_change):
    old_link = magic_link_issue(guardian=parent_a)  # mailed to the old address before
    ask_change()
    Client().post(_link(mail.outbox[0]))
    assert Client().post(f"/sign-in/{old_link.token}/").status_code == 410
    new_link = magic_link_issue(guardian=parent_a)
    browser = Client()
    assert browser.post(f"/sign-in/{new_link.token}/").status_code == 302


def test_the_old_address_is_free_for_someone_else_afterwards(db, parent_a, ask_change):
    ask_change()
    Client().post(_link(mail.outbox[0]))
    parent_a.user.refresh_from_db()
    assert parent_a.user.username != "parent.a@example.com"  # the account followed
    newcomer = guardian("parent.a@example.com", "Newcomer")
    assert newcomer.user_id != parent_a.user_id


def test_the_link_lasts_24_hours(db, parent_a, ask_change):
    ask_change()
    change = EmailChange.objects.get()
    assert (
        timedelta(hours=23, minutes=59)
        < change.expires_at - change.created_at
        <= timedelta(hours=24)
    )
    EmailChange.objects.update(expires_at=change.created_at)
    assert Client().post(_link(mail.outbox[0])).status_code == 410
    parent_a.refresh_from_db()
    assert parent_a.email == "parent.a@example.com"


def test_an_address_another_account_has_is_refused_at_the_link(
    db, parent_a, ask_change, django_user_model
):
    ask_change("parent.b@example.com")
    guardian("parent.b@example.com")  # taken meanwhile by another guardian
    r = Client().post(_link(mail.outbox[0]))
    assert r.status_code == 409
    parent_a.refresh_from_db()
    assert parent_a.email == "parent.a@example.com"
    django_user_model.objects.create_user("staff@example.org", password="pw", is_staff=True)
    ask_change("Staff@example.org")
    assert Client().post(_link(mail.outbox[1])).status_code == 409
    staff = get_user_model().objects.get(username="staff@example.org")
    assert staff.is_staff and staff.has_usable_password()  # untouched


def test_the_same_address_or_nonsense_is_refused_on_the_page(db, web_a, ask_change):
    assert ask_change("parent.a@example.com").status_code == 400
    assert ask_change("not an address").status_code == 400
    assert not EmailChange.objects.exists()
    assert mail.outbox == []


def test_the_change_is_the_guardians_own(db, client, parent_a):
    assert client.post("/account/email/", {"email": NEW}).status_code == 302  # to sign in
    assert client.get("/account/")["Location"].startswith("/sign-in/")
    assert not EmailChange.objects.exists()


def test_only_the_change_id_travels_to_the_worker(
    db, web_a, sent_jobs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        web_a.post("/account/email/", {"email": NEW})
    change = EmailChange.objects.get()
    assert sent_jobs == [(CONFIRM_TASK, [change.pk])]
    assert change.token_hash is None  # the worker makes the link; no token on the broker
