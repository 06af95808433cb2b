"""What the browser tests share besides their fixtures (tests/browser/conftest.py): how Chromium
is launched, the phone they play, where screenshots go, and signing a parent in."""

from __future__ import annotations

import re
from pathlib import Path

from django.urls import reverse

from portal.auth import magic_link_issue

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - only when the dev requirements are not installed
    expect = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 10_000
MY_CHILDREN = "My children"


def magic_url(live_server, guardian) -> str:
    # issued.url is built from settings.SITE_URL, which is not the live server's address.
    issued = magic_link_issue(guardian=guardian)
    return live_server.url + reverse("portal:magic-link", args=[issued.token])


def press_sign_in(page, url: str):
    """Open the emailed link: a page with one "Sign in" button, which signs in (a POST)."""
    response = page.goto(url)
    assert response.ok, response.status
    buttons = page.get_by_role("main").get_by_role("button")
    expect(buttons).to_have_count(1)
    expect(buttons).to_have_text("Sign in")
    buttons.click()


def sign_in(page, url: str, child_name: str):
    press_sign_in(page, url)
    expect(page).to_have_url(re.compile(r"/children/$"))
    expect(page.get_by_role("heading", name=MY_CHILDREN, level=1)).to_be_visible()
    expect(page.get_by_role("heading", name=child_name)).to_be_visible()
