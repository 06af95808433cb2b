"""Fixtures of the browser tests: headless Chromium and phone-sized pages.

Playwright's sync API keeps an asyncio event loop in the main thread, which makes Django's ORM
raise ``SynchronousOnlyOperation`` in the test body and in the database flush after each test.
The module-scoped ``_allow_orm_beside_playwright`` fixture sets ``DJANGO_ALLOW_ASYNC_UNSAFE`` for
each browser test module only (and restores it afterwards), so other test modules keep Django's
safety check.
"""

from __future__ import annotations

import os

import pytest

from .helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PHONE, TIMEOUT_MS, sync_playwright


@pytest.fixture(scope="module")
def _allow_orm_beside_playwright():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"Browser tests cannot run: {reason}. CI=true, so this is a failure, not a skip: "
            f"install Debian's chromium (apt-get install chromium) and the dev requirements.",
            pytrace=False,
        )
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def browser(_allow_orm_beside_playwright):
    if sync_playwright is None:
        _unavailable("the playwright package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_phone(browser):
    """Make fresh browser contexts (own cookies) at a phone viewport; closed after the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
            locale="en-GB",
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.broken = []  # sub-resources that did not load: a broken image, the stylesheet...

        def on_response(response):
            if response.status >= 400 and response.request.resource_type != "document":
                page.broken.append(f"{response.status} {response.url}")

        def on_failed(request):
            if request.failure != "net::ERR_ABORTED":  # cut short by navigating away: fine
                page.broken.append(f"{request.failure} {request.url}")

        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
