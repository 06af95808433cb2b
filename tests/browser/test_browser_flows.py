"""Browser flows in headless Chromium: consent in one tap each way, the download package on a
phone, and a school admin running a campaign and enrolling photos. Screenshots go to
test-artifacts/ (the browser's fixtures are in tests/browser/conftest.py)."""

from __future__ import annotations

import re
import zipfile

import pytest
from django.contrib.auth.models import Group
from django.core import mail

from biometrics import demo_photos
from biometrics.models import Photo
from consent.models import StaffMembership
from consent.rules import active_purpose_codes
from portal.exports import export_build
from portal.models import Export

from ..factories import StudentFactory, guardian, link
from .helpers import expect, magic_url, sign_in

pytestmark = pytest.mark.browser


def open_child(page, name: str):
    page.get_by_role("link", name=re.compile(name)).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def purpose_block(page, code: str):
    return page.locator(f'.purpose[data-purpose="{code}"]')


def test_withdrawing_takes_no_more_steps_than_granting(
    live_server, child_a, parent_a, new_phone, artifacts
):
    page = new_phone()
    sign_in(page, magic_url(live_server, parent_a), "Child A")
    open_child(page, "Child A")
    block = purpose_block(page, "attendance")
    expect(block).to_have_attribute("data-status", "inactive")

    grant_steps = 0
    block.get_by_role("button", name="Give consent").click()
    grant_steps += 1
    expect(purpose_block(page, "attendance")).to_have_attribute("data-status", "active")
    assert "attendance" in active_purpose_codes(child_a)

    withdraw_steps = 0
    purpose_block(page, "attendance").get_by_role("button", name="Withdraw consent").click()
    withdraw_steps += 1
    expect(purpose_block(page, "attendance")).to_have_attribute("data-status", "inactive")
    assert "attendance" not in active_purpose_codes(child_a)
    assert withdraw_steps <= grant_steps == 1
    page.screenshot(path=artifacts / "consent-withdrawn-en.png", full_page=True)


def test_download_package_on_a_phone_and_open_its_index(
    live_server, enrolled_child_a, parent_a, new_phone, artifacts, tmp_path
):
    page = new_phone()
    sign_in(page, magic_url(live_server, parent_a), "Child A")
    open_child(page, "Child A")
    page.get_by_role("button", name="Prepare my download").click()
    expect(page.get_by_role("heading", name="Your download")).to_be_visible()
    export = Export.objects.get(student=enrolled_child_a)
    export_build(export_id=export.pk)  # what the worker does
    page.reload()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the ZIP").click()
    path = tmp_path / "package.zip"
    info.value.save_as(path)
    folder = tmp_path / "package"
    with zipfile.ZipFile(path) as package:
        package.extractall(folder)
    assert any(mail.outbox)  # "your download is ready"

    page.goto((folder / "index.html").as_uri())
    expect(
        page.get_by_role("heading", name=re.compile("Everything held about Child A"))
    ).to_be_visible()
    for heading in (
        "Why it is held (purposes)",
        "Your rights",
        "How to complain",
        "Automated decisions, how they work, and their limits",
    ):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    assert page.evaluate("document.querySelector('img').naturalWidth") > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "export-index-en.png", full_page=True)


def test_school_admin_runs_a_campaign_and_enrols_photos(
    live_server,
    django_user_model,
    school,
    purposes,
    child_a,
    parent_a,
    browser,
    artifacts,
    tmp_path,
):
    staff = django_user_model.objects.create_user("dana", password="correct-horse-9", is_staff=True)
    staff.groups.add(Group.objects.get(name="School admin"))
    StaffMembership.objects.create(user=staff, school=school)
    unconsented = StudentFactory(school=school, name="Unconsented Child")
    link(guardian("waiting@example.com"), unconsented)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "correct-horse-9")
    page.click("input[type=submit]")
    expect(page.get_by_role("link", name="Dashboard")).to_be_visible()

    page.goto(live_server.url + "/admin/portal/consentcampaign/add/")
    page.select_option("#id_school", str(school.pk))
    page.select_option("#id_purpose", str(purposes["gate_access"].pk))
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Emailed 1 guardian")
    page.screenshot(path=artifacts / "admin-campaign.png", full_page=True)

    photo = tmp_path / "child.jpg"
    photo.write_bytes(demo_photos.grace_hopper())
    page.goto(f"{live_server.url}/admin/consent/student/{child_a.pk}/enrol/")
    page.set_input_files("#id_image", str(photo))
    page.click("input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Photo received")
    assert Photo.objects.filter(student=child_a, source="admin").exists()

    page.goto(f"{live_server.url}/admin/consent/student/{unconsented.pk}/enrol/")
    page.set_input_files("#id_image", str(photo))
    page.click("input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("No purpose is active for this child")
    assert not Photo.objects.filter(student=unconsented).exists()
    page.screenshot(path=artifacts / "admin-enrol-409.png", full_page=True)
    context.close()
