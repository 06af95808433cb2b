"""Browser tests: a parent on a phone, driving the real portal in headless Chromium.

How to run
----------
From the repository root::

    .venv/bin/python -m pytest tests/browser -m browser

Only these tests:      ``-m browser``;   everything else:  ``-m "not browser"``.

They use Playwright's sync API with the system Chromium at ``/usr/bin/chromium`` (Playwright's own
browser download is not used) and pytest-django's ``live_server`` (a real HTTP server in a thread,
with a transactional test database). If ``/usr/bin/chromium`` (or the ``playwright`` package) is
missing the tests are skipped -- except when the environment variable ``CI`` is ``true``: then they
fail, so CI can never pass by silently skipping them. The fixtures are in
``tests/browser/conftest.py``, the shared helpers in ``tests/browser/helpers.py``.

Screenshots
-----------
Full-page screenshots at a 390x844 phone viewport are written to ``test-artifacts/`` at the
repository root (gitignored), overwritten on every run:

    test-artifacts/children-en.png     "My children", English
    test-artifacts/child-en.png        a child's page with the 128 numbers shown, English
    test-artifacts/child-zh-hans.png   the same child's page after switching to 简体中文
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import translation

from biometrics.models import FaceTemplate

from .helpers import MY_CHILDREN, PHONE, expect, magic_url, press_sign_in, sign_in

# "A parent would notice": these are what the pages say, in English (msgids).
HOLDS = "What the school holds"
CONSENT = "Consent, purpose by purpose"
PHOTOS = "Photos"
TEMPLATES = "Face templates"
EVENTS = "Recognition events"
SYSTEMS = "Where it is held"
ACCESS = "Who looked at this data"
SHOW_NUMBERS = "Show the 128 numbers"
LINK_GONE = "This link no longer works"
CJK = re.compile("[\u4e00-\u9fff]")


# --------------------------------------------------------------------------- helpers


def zh(text: str) -> str:
    """What Django shows for `text` in Simplified Chinese (English while no catalogue exists)."""
    with translation.override("zh-hans"):
        return translation.gettext(text)


def section(page, heading: str):
    return page.locator("section").filter(has=page.get_by_role("heading", name=heading, exact=True))


def assert_no_horizontal_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"


def wait_for_images(page) -> int:
    """Bring every image into view (they are loading=lazy) and wait until each has loaded."""
    images = page.locator("main img")
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=image.element_handle())
    page.evaluate("window.scrollTo(0, 0)")
    return page.evaluate(
        "[...document.querySelectorAll('main img')].filter(i => i.naturalWidth > 0).length"
    )


# --------------------------------------------------------------------------- tests


@pytest.mark.browser
def test_phone_sign_in_and_child_page_in_english(
    live_server, enrolled_child_a, parent_a, new_phone, artifacts
):
    # live_server switches these fixtures to a transactional database, so the server thread sees
    # the data; landing on a page that names the child proves it.
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    page = new_phone()

    sign_in(page, magic_url(live_server, parent_a), "Child A")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert_no_horizontal_scroll(page)
    page.screenshot(path=artifacts / "children-en.png", full_page=True)

    page.get_by_role("link", name=re.compile("Child A")).click()
    expect(page.get_by_role("heading", name="Child A", level=1)).to_be_visible()
    assert wait_for_images(page) >= 1, "no photo thumbnail loaded"

    holds = section(page, HOLDS)
    expect(holds).to_contain_text(re.compile(r"Destroyed by \d{1,2} \w{3} \d{4} at the latest"))

    templates = section(page, TEMPLATES)
    expect(templates).to_contain_text(template.model)
    expect(templates).to_contain_text("128")
    expect(templates.locator("ol.numbers li")).to_have_count(0)

    systems = section(page, SYSTEMS)
    expect(systems.get_by_role("row").filter(has_text="Guardian portal database")).to_have_count(1)
    expect(systems.get_by_role("row").filter(has_text="Photo storage")).to_have_count(1)

    templates.get_by_role("link", name=SHOW_NUMBERS).click()
    numbers = section(page, TEMPLATES).locator("ol.numbers > li")
    expect(numbers).to_have_count(128)
    assert all(re.fullmatch(r"-?\d+\.\d+", n.strip()) for n in numbers.all_inner_texts())

    # The thumbnail request was logged; the reloaded page shows it as the parent's own look.
    you_looked = section(page, ACCESS).locator("li").filter(has_text="You")
    expect(you_looked.filter(has_text=re.compile("photo", re.I)).first).to_be_visible()

    assert wait_for_images(page) >= 1
    assert_no_horizontal_scroll(page)
    assert page.broken == []
    page.screenshot(path=artifacts / "child-en.png", full_page=True)


@pytest.mark.browser
def test_child_page_in_simplified_chinese(
    live_server, enrolled_child_a, parent_a, new_phone, artifacts
):
    page = new_phone()
    sign_in(page, magic_url(live_server, parent_a), "Child A")
    page.get_by_role("link", name=re.compile("Child A")).click()
    expect(page.get_by_role("heading", name="Child A", level=1)).to_be_visible()

    page.locator('header button[value="zh-hans"]').click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page).to_have_url(re.compile(rf"/children/{enrolled_child_a.pk}/$"))
    expect(page.get_by_role("heading", name="Child A", level=1)).to_be_visible()

    for heading in (HOLDS, CONSENT, PHOTOS, TEMPLATES, EVENTS, SYSTEMS, ACCESS):
        expect(page.get_by_role("heading", name=zh(heading), exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=zh(SHOW_NUMBERS), exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=zh(MY_CHILDREN))).to_be_visible()
    # The switch now offers the way back to English.
    expect(page.locator('header button[value="en"]')).to_be_visible()

    if zh(HOLDS) != HOLDS:  # the zh_Hans catalogue exists, so the page must really be Chinese
        assert CJK.search(page.locator("main").inner_text()), "no Chinese text on the page"

    assert wait_for_images(page) >= 1
    assert_no_horizontal_scroll(page)
    assert page.broken == []
    page.screenshot(path=artifacts / "child-zh-hans.png", full_page=True)


@pytest.mark.browser
def test_used_link_does_not_sign_in_again(live_server, child_a, parent_a, new_phone):
    url = magic_url(live_server, parent_a)
    sign_in(new_phone(), url, "Child A")

    page = new_phone()  # another context: no session cookie from the first sign-in
    response = page.goto(url)
    assert response.status == 410
    expect(page.get_by_role("heading", name=LINK_GONE)).to_be_visible()
    expect(page.get_by_role("link", name="Get a new link")).to_be_visible()
    expect(page.get_by_role("heading", name=MY_CHILDREN)).to_have_count(0)
    expect(page.get_by_text("Child A")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    page.goto(live_server.url + reverse("portal:children"))
    expect(page).to_have_url(re.compile(r"/sign-in/"))  # still signed out


@pytest.mark.browser
def test_works_without_javascript(live_server, enrolled_child_a, parent_a, new_phone):
    page = new_phone(java_script_enabled=False)
    sign_in(page, magic_url(live_server, parent_a), "Child A")

    page.get_by_role("link", name=re.compile("Child A")).click()
    expect(page.get_by_role("heading", name="Child A", level=1)).to_be_visible()
    expect(section(page, SYSTEMS)).to_contain_text("Guardian portal database")

    section(page, TEMPLATES).get_by_role("link", name=SHOW_NUMBERS).click()
    numbers = section(page, TEMPLATES).locator("ol.numbers > li")
    expect(numbers).to_have_count(128)
    expect(numbers.first).to_be_visible()  # <details open>: shown without a click
    expect(section(page, TEMPLATES).get_by_role("link", name="Hide")).to_be_visible()


@pytest.mark.browser
def test_other_parents_child_is_not_reachable(live_server, child_a, parent_b, new_phone):
    page = new_phone()
    press_sign_in(page, magic_url(live_server, parent_b))
    expect(page.get_by_role("heading", name=MY_CHILDREN, level=1)).to_be_visible()
    expect(page.get_by_text("Child A")).to_have_count(0)

    response = page.goto(live_server.url + reverse("portal:child", args=[child_a.pk]))
    assert response.status == 404
    assert "Child A" not in page.content()
    assert "Child A" not in page.title()
