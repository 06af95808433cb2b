"""Signing in and out in headless Chromium: the emailed link opens a page with one button, and a
mail scanner that opens it first spoils nothing; "sign out everywhere" signs out another phone."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from portal.auth import SEND_TASK, magic_link_send
from portal.celery import app

from .helpers import MY_CHILDREN, expect, magic_url, press_sign_in, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def mail_worker(monkeypatch):
    """The sign-in worker, run at once on what the request queued (only the attempt's id)."""

    def send_task(name, args=None, **options):
        assert name == SEND_TASK
        magic_link_send(attempt_id=args[0])

    monkeypatch.setattr(app, "send_task", send_task)


def test_sign_in_from_the_form_through_the_button_without_javascript(
    live_server, child_a, parent_a, new_phone, mail_worker, artifacts
):
    page = new_phone(java_script_enabled=False)
    page.goto(live_server.url + reverse("portal:sign-in"))
    page.get_by_label("Your email address").fill("parent.a@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    (message,) = mail.outbox
    url = next(line for line in message.body.splitlines() if "/sign-in/" in line)
    path = "/" + url.split("/", 3)[3]

    scanner = new_phone()  # a mail scanner's browser opens the link first
    scanner.goto(live_server.url + path)
    expect(scanner.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    scanner.goto(live_server.url + reverse("portal:children"))
    expect(scanner).to_have_url(re.compile(r"/sign-in/"))  # it got no session

    response = page.goto(live_server.url + path)
    assert response.status == 200
    page.screenshot(path=artifacts / "sign-in-button.png", full_page=True)
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/children/$"))
    expect(page.get_by_role("heading", name=MY_CHILDREN, level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Child A")).to_be_visible()


def test_sign_out_everywhere_signs_out_the_other_phone(live_server, child_a, parent_a, new_phone):
    mine, lost = new_phone(), new_phone()
    sign_in(lost, magic_url(live_server, parent_a), "Child A")
    press_sign_in(mine, magic_url(live_server, parent_a))
    mine.get_by_role("link", name="My account").click()
    mine.get_by_role("button", name="Sign out everywhere").click()
    expect(mine).to_have_url(re.compile(r"/sign-in/$"))
    expect(mine.get_by_text("You are signed out on every device and app.")).to_be_visible()

    lost.reload()
    expect(lost).to_have_url(re.compile(r"/sign-in/"))
    expect(lost.get_by_text("Child A")).to_have_count(0)
