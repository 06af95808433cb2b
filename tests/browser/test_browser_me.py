"""Browser test: a pupil on a phone signs in with the link from their school's sheet, reads
their own page `/me/` in English and in Simplified Chinese (390 px wide, nothing scrolls
sideways), says no, and changes their mind.

Screenshots (test-artifacts/, gitignored): me-en.png, me-zh-hans.png.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from biometrics.models import FaceTemplate, RecognitionEvent
from consent.services import student_update
from portal.child_auth import child_link_issue

from ..factories import TEST_ACTOR
from .helpers import PHONE, expect
from .test_browser import CJK, section, zh

HEADINGS = (
    "What your face is used for",
    "What the school keeps about you",
    "Where it is kept",
    "How long it is kept",
    "Who looked at it",
    "Get a copy of it all",
)
SAY_NO = "I don't want my face used"
CHANGED_MY_MIND = "I've changed my mind"


def assert_no_horizontal_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"


@pytest.mark.browser
def test_a_pupil_reads_their_page_on_a_phone_in_both_languages_and_says_no(
    live_server, child_a, purposes, new_phone, artifacts
):
    today = timezone.localdate()
    student_update(
        student=child_a,
        external_id=child_a.external_id,
        name=child_a.name,
        date_of_birth=today.replace(year=today.year - 13, day=1),
        class_name=child_a.class_name,
        actor=TEST_ACTOR,
    )
    FaceTemplate.objects.create(student=child_a, ciphertext=b"sealed")
    RecognitionEvent.objects.create(
        student=child_a,
        purpose=purposes["gate_access"],
        device="North-entrance-turnstile-controller-number-0000000042",  # a long word wraps
        distance=0.31,
        at=timezone.now(),
    )
    issued = child_link_issue(student=child_a, actor=TEST_ACTOR)
    page = new_phone()

    response = page.goto(live_server.url + reverse("portal:child-link", args=[issued.token]))
    assert response.ok, response.status
    buttons = page.get_by_role("main").get_by_role("button")
    expect(buttons).to_have_count(1)
    buttons.click()
    expect(page).to_have_url(re.compile(r"/me/$"))

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Child A")
    for heading in HEADINGS:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(section(page, "What the school keeps about you")).to_contain_text("turnstile")
    expect(page.get_by_text("A parent said yes.").first).to_be_visible()
    assert_no_horizontal_scroll(page)
    assert page.broken == []
    page.screenshot(path=artifacts / "me-en.png", full_page=True)

    page.get_by_role("button", name=SAY_NO).click()
    expect(page.get_by_role("heading", name="You said no", exact=True)).to_be_visible()
    expect(page.get_by_text("You said no, so your face is not used.").first).to_be_visible()

    page.locator('header button[value="zh-hans"]').click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page).to_have_url(re.compile(r"/me/$"))
    for heading in HEADINGS:
        expect(page.get_by_role("heading", name=zh(heading), exact=True)).to_be_visible()
    assert CJK.search(page.locator("main").inner_text()), "no Chinese text on the page"
    assert_no_horizontal_scroll(page)
    assert page.broken == []
    page.screenshot(path=artifacts / "me-zh-hans.png", full_page=True)

    page.get_by_role("button", name=zh(CHANGED_MY_MIND)).click()
    expect(page.get_by_role("button", name=zh(SAY_NO))).to_be_visible()
    assert_no_horizontal_scroll(page)
