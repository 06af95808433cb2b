"""A parent reads the notice they decided on and checks the consent receipt on a phone:
opens the notice on the child's page, downloads the receipt, finds in it the SHA-256 of the very
text they read, follows "How to check a receipt yourself", pastes it and is told it is genuine
(and that a changed copy is not)."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import expect, magic_url, sign_in

pytestmark = pytest.mark.browser


def test_a_parent_checks_a_receipt_on_a_phone(live_server, child_a, parent_a, new_phone, artifacts):
    page = new_phone()
    sign_in(page, magic_url(live_server, parent_a), "Child A")
    page.get_by_role("link", name=re.compile("Child A")).click()
    purpose = page.locator('.purpose[data-purpose="gate_access"]')
    purpose.get_by_text(re.compile(r"Read the notice \(version 1\)")).click()
    expect(purpose.locator("p.notice")).to_contain_text("Notice for gate_access v1")
    shown_hash = purpose.locator("p.hash").first.inner_text().removeprefix("SHA-256 ").strip()
    history = purpose.locator("details.history")
    history.locator("summary").click()
    with page.expect_download() as info:
        history.get_by_role("link", name="receipt", exact=True).click()
    receipt = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert receipt["keyId"].startswith("ed25519-")
    assert receipt["noticeSha256"] == shown_hash  # the receipt names the text the parent read

    history.get_by_role("link", name="How to check a receipt yourself").click()
    expect(page.get_by_role("heading", name="Check a receipt", level=1)).to_be_visible()
    expect(page.locator(f'li[data-key-id="{receipt["keyId"]}"]')).to_be_visible()
    page.get_by_label("Paste the whole receipt (JSON)").fill(json.dumps(receipt, indent=2))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", name="✓ This receipt is genuine")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "receipt-checked-en.png", full_page=True)

    changed = {**receipt, "decision": "withdraw"}
    page.get_by_label("Paste the whole receipt (JSON)").fill(json.dumps(changed))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", name="✗ This receipt does not check out")).to_be_visible()
    expect(page.locator("#result")).to_contain_text("the receipt was changed after it was signed")
