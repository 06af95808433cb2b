"""Receipts a parent can check: every consent receipt is a valid Kantara Consent Receipt v1.1,
signed like deletion receipts, naming its key; the key history outlives a rotation; the offline
steps the portal publishes really verify a downloaded receipt (consent/signing.py)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from biometrics.erasure import erasure_open, erasure_step_run
from biometrics.models import FaceTemplate
from biometrics.receipts import erasure_receipt_verify, receipt_check, signed_receipt
from consent import signing
from consent.models import ConsentDecision, Decision, Notice
from consent.receipts import consent_receipt_verify
from consent.services import child_refusal_record, consent_decide
from portal.exports.package import build_package

from .factories import TEST_ACTOR, guardian, link

SCHEMA_PATH = Path(__file__).parent / "reference" / "kantara-consent-receipt-v1_1-schema.json"
KANTARA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def kantara_errors(receipt: dict) -> list[str]:
    validator = jsonschema.Draft4Validator(KANTARA)  # the draft the schema declares
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(receipt)]


def seed() -> bytes:
    return secrets.token_bytes(32)


def public_b64(seed_bytes: bytes) -> str:
    key = Ed25519PrivateKey.from_private_bytes(seed_bytes).public_key()
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def decide(child, purpose, parent, decision):
    return consent_decide(
        student=child, purpose=purpose, guardian=parent, decision=decision, notice_version=1
    ).record


def sealed_erasure(child):
    """An erasure of the child's (stand-in) data, run to its signed receipt."""
    FaceTemplate.objects.create(student=child, ciphertext=b"sealed")
    erasure = erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
    for step in [*erasure.steps.exclude(kind="key"), *erasure.steps.filter(kind="key")]:
        erasure_step_run(step_id=step.pk)
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    return erasure


# --- every kind of consent receipt, against the published schema ------------------------------


def test_every_kind_of_consent_receipt_is_a_valid_signed_kantara_receipt(
    school, purposes, parent_a, web_a, sent_jobs
):
    from .factories import StudentFactory, grant

    gate, attendance = purposes["gate_access"], purposes["attendance"]
    child = StudentFactory(school=school)
    other = guardian("other@example.com")
    link(parent_a, child)
    link(other, child)
    written = [
        grant(child, gate, parent_a),
        decide(child, attendance, parent_a, Decision.GRANT),
        decide(child, attendance, parent_a, Decision.WITHDRAW),
        decide(child, gate, other, Decision.OBJECT),
        child_refusal_record(student=child, actor=TEST_ACTOR, purpose=gate).record,
        child_refusal_record(student=child, actor=TEST_ACTOR).record,  # every purpose
        child_refusal_record(student=child, actor=TEST_ACTOR, lifted=True).record,
    ]
    # ... and what "delete everything" records on the parent's page (a withdrawal)
    delete_child = StudentFactory(school=school)
    link(parent_a, delete_child)
    grant(delete_child, gate, parent_a)
    assert web_a.post(f"/children/{delete_child.pk}/delete/").status_code == 302
    written.append(ConsentDecision.objects.filter(student=delete_child).order_by("at").last())

    kinds = {d.decision for d in written}
    assert kinds == set(Decision.values)
    notice = Notice.objects.get(purpose=gate, version=1)
    for decision in written:
        receipt = ConsentDecision.objects.get(pk=decision.pk).receipt
        assert kantara_errors(receipt) == [], decision.decision
        assert consent_receipt_verify(receipt).valid, decision.decision
        assert receipt["keyId"] == signing.current_key().key_id
        assert receipt["keyHistoryUrl"].endswith("/api/v1/keys/")
        assert "publicKey" not in receipt  # checked with the published key, never its own
        assert receipt["piiControllers"][0]["address"] == {
            "streetAddress": school.address,
            "addressCountry": school.jurisdiction,
        }
        # the notice shown: its one text today, in the portal's language, and that text's hash
        assert receipt["language"] == receipt["noticeLanguage"] == "en"
        assert receipt["iso27560"]["privacy_notice"]["language"] == "en"
        if decision.purpose == gate:
            assert receipt["noticeSha256"] == hashlib.sha256(notice.text.encode()).hexdigest()
    # what the parent downloads is that receipt, and it checks out
    mine = written[0]
    downloaded = web_a.get(f"/children/{child.pk}/receipts/{mine.receipt_id}.json").json()
    assert downloaded == mine.receipt
    assert receipt_check(downloaded)[0] == "consent"


def test_the_schema_rejects_the_receipt_as_it_was(child_a):
    """The test above can fail: the receipt before this change (address as a string) is not a
    Kantara receipt."""
    receipt = child_a.decisions.get().receipt
    old = {
        **receipt,
        "piiControllers": [{**receipt["piiControllers"][0], "address": "1 School Lane"}],
    }
    assert kantara_errors(old) == [
        "['piiControllers', 0, 'address']: '1 School Lane' is not of type 'object'"
    ]
    assert kantara_errors({k: v for k, v in receipt.items() if k != "services"})


def test_a_changed_consent_receipt_no_longer_verifies(child_a):
    receipt = child_a.decisions.get().receipt
    assert consent_receipt_verify(receipt).valid
    for changed in (
        {**receipt, "decision": "withdraw"},
        {**receipt, "consentTimestamp": receipt["consentTimestamp"] + 1},
        {**receipt, "keyId": "ed25519-0000000000000000"},
        {k: v for k, v in receipt.items() if k != "signature"},
    ):
        assert not consent_receipt_verify(changed).valid
    assert consent_receipt_verify({**receipt, "decision": "withdraw"}).problem == "bad_signature"
    assert consent_receipt_verify({**receipt, "keyId": "x"}).problem == "unknown_key"


# --- deletion receipts ------------------------------------------------------------------------


def test_a_deletion_receipt_names_its_key_and_carries_no_key(child_a, sent_jobs):
    receipt = signed_receipt(sealed_erasure(child_a))
    assert receipt["version"] == "guardian-erasure-receipt/2"
    assert receipt["key_id"] == signing.current_key().key_id
    assert receipt["key_history_url"].endswith("/api/v1/keys/")
    assert "public_key" not in receipt
    assert erasure_receipt_verify(receipt).valid
    assert receipt_check(receipt)[0] == "erasure"
    assert erasure_receipt_verify({**receipt, "trigger": "leaver"}).problem == "bad_signature"


def test_a_first_version_deletion_receipt_verifies_only_with_a_published_key(child_a, sent_jobs):
    """Receipts sealed before key ids carried their public key; that key must be published."""
    receipt = signed_receipt(sealed_erasure(child_a))
    body = {k: v for k, v in receipt.items() if k not in ("key_id", "signature")}
    first = {
        **body,
        "version": "guardian-erasure-receipt/1",
        "public_key": signing.current_key().public_key,
    }
    first["signature"] = signing.sign(first)
    assert erasure_receipt_verify(first).valid
    forger = seed()
    forged = {**first, "public_key": public_b64(forger)}
    forged["signature"] = base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(forger).sign(signing.canonical(forged))
    ).decode()
    assert erasure_receipt_verify(forged).problem == "unknown_key"


# --- key history and rotation -----------------------------------------------------------------


def test_receipts_still_verify_after_the_key_is_rotated(
    settings, school, purposes, parent_a, client, sent_jobs
):
    from .factories import StudentFactory, grant

    old_seed, new_seed = seed(), seed()
    settings.GUARDIAN_SIGNING_KEY = old_seed
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = []
    child = StudentFactory(school=school)
    link(parent_a, child)
    before = grant(child, purposes["gate_access"], parent_a).receipt
    erased_before = signed_receipt(sealed_erasure(StudentFactory(school=school)))
    old_id = signing.current_key().key_id

    rotated_at = timezone.now()
    settings.GUARDIAN_SIGNING_KEY = new_seed
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = [
        {
            "public_key": public_b64(old_seed),
            "valid_from": None,
            "valid_until": rotated_at.isoformat(),
        }
    ]
    after = decide(child, purposes["gate_access"], parent_a, Decision.WITHDRAW).receipt
    new_id = after["keyId"]
    assert new_id != old_id == before["keyId"] == erased_before["key_id"]
    for receipt in (before, after):
        assert consent_receipt_verify(receipt).valid
    assert erasure_receipt_verify(erased_before).valid

    history = client.get("/api/v1/keys/").json()  # public: no sign-in
    assert [(k["key_id"], k["status"]) for k in history["keys"]] == [
        (new_id, "current"),
        (old_id, "retired"),
    ]
    assert history["keys"][0]["valid_from"] == rotated_at.isoformat()
    assert history["keys"][1]["valid_until"] == rotated_at.isoformat()
    assert history["keys"][1]["public_key"] == public_b64(old_seed)
    page = client.get(f"/schools/{school.slug}/").content.decode()
    assert f'data-key-id="{new_id}"' in page and f'data-key-id="{old_id}"' in page

    # the retired key cannot sign for a date after its retirement
    late = {**before, "consentTimestamp": int((rotated_at + timedelta(days=1)).timestamp())}
    late["signature"] = base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(old_seed).sign(signing.canonical(late))
    ).decode()
    assert consent_receipt_verify(late).problem == "outside_key_period"

    # a key dropped from the history no longer vouches for anything
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = []
    assert consent_receipt_verify(before).problem == "unknown_key"


def test_a_retired_key_must_say_when_it_stopped(settings):
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = [{"public_key": public_b64(seed())}]
    with pytest.raises(ImproperlyConfigured, match="valid_until"):
        signing.key_history()
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = [{"public_key": "short", "valid_until": "2030-01-01"}]
    with pytest.raises(ImproperlyConfigured, match="public_key"):
        signing.key_history()


def test_a_key_id_is_derived_from_its_key():
    raw = base64.b64decode(signing.current_key().public_key)
    assert signing.current_key().key_id == "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


# --- checking a receipt: the page, the published steps, the export ----------------------------


def test_the_check_page_answers_for_any_receipt_and_never_fails(client, child_a, sent_jobs):
    receipt = child_a.decisions.get().receipt
    erased = signed_receipt(sealed_erasure(child_a))
    page = client.get("/verify-receipt/")
    assert page.status_code == 200
    assert signing.current_key().key_id in page.content.decode()
    cases = [
        (json.dumps(receipt), "true", "This receipt is genuine"),
        (json.dumps(erased, indent=2), "true", "A deletion receipt"),
        (json.dumps({**receipt, "decision": "object"}), "false", "the receipt was changed"),
        ("{not json", "false", "That is not a receipt"),
        ("[1, 2]", "false", "That is not a receipt"),
        ("x" * 200_001, "false", "That is not a receipt"),
        (json.dumps({"hello": "world"}), "false", "not a receipt this portal writes"),
        (json.dumps({**receipt, "signature": "%%%"}), "false", "the receipt was changed"),
    ]
    for text, valid, words in cases:
        r = client.post("/verify-receipt/", {"receipt": text})
        assert r.status_code == 200
        body = r.content.decode()
        assert f'data-valid="{valid}"' in body, text[:40]
        assert html.escape(words, quote=False) in body, text[:40]


def published_steps(body: str) -> dict[str, str]:
    """The check scripts as the page shows them."""
    return {
        name: html.unescape(
            re.search(rf'<pre id="check-{name}"><code>(.*?)</code></pre>', body, re.S)[1]
        )
        for name in ("python", "openssl")
    }


def run_steps(steps: dict[str, str], receipt: dict, keys: dict, folder: Path) -> dict:
    folder.mkdir()
    # as a parent saves them: pretty-printed, UTF-8
    (folder / "receipt.json").write_text(json.dumps(receipt, indent=2, ensure_ascii=False), "utf-8")
    (folder / "keys.json").write_text(json.dumps(keys), "utf-8")
    results = {
        "python": subprocess.run(
            [sys.executable, "-c", steps["python"]], cwd=folder, capture_output=True, text=True
        )
    }
    if all(shutil.which(tool) for tool in ("openssl", "jq", "xxd", "bash")):
        results["openssl"] = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", steps["openssl"]],
            cwd=folder,
            capture_output=True,
            text=True,
        )
    return results


def test_the_published_offline_steps_verify_a_downloaded_receipt(
    client, web_a, child_a, school, sent_jobs, tmp_path
):
    school.name = "École 学校 \u2028 «Tilde»"  # what canonical JSON must survive
    school.save()
    from .factories import grant

    gate = child_a.decisions.get().purpose
    record = grant(child_a, gate, child_a.guardians.get())
    consent = web_a.get(f"/children/{child_a.pk}/receipts/{record.receipt_id}.json").json()
    erasure = sealed_erasure(child_a)
    deletion = web_a.get(f"/erasures/{erasure.pk}/receipt.json").json()
    keys = client.get("/api/v1/keys/").json()
    steps = published_steps(client.get("/verify-receipt/").content.decode())
    assert "openssl" in run_steps(steps, consent, keys, tmp_path / "probe"), "no openssl/jq/xxd"

    for name, receipt in (("consent", consent), ("deletion", deletion)):
        results = run_steps(steps, receipt, keys, tmp_path / name)
        assert results["python"].returncode == 0, results["python"].stderr
        assert results["python"].stdout.startswith("Valid: signed by ed25519-")
        assert results["openssl"].returncode == 0, results["openssl"].stderr
        assert "Signature Verified Successfully" in results["openssl"].stdout
        changed = {**receipt, "school" if name == "deletion" else "decision": "other"}
        results = run_steps(steps, changed, keys, tmp_path / f"{name}-changed")
        assert results["python"].returncode != 0
        assert results["openssl"].returncode != 0


def test_the_export_explains_how_to_check_its_receipts(child_a, parent_a, sent_jobs, tmp_path):
    out = BytesIO()
    build_package(student=child_a, guardian=parent_a, language="en", out=out)
    with zipfile.ZipFile(out) as zf:
        data = json.loads(zf.read("data.json"))
        index = zf.read("index.html").decode()
        receipts = [
            json.loads(zf.read(n)) for n in zf.namelist() if n.startswith("consent_receipts/")
        ]
    assert data["receipt_verification"]["key_history"].endswith("/api/v1/keys/")
    assert data["receipt_verification"]["how_to_verify"].endswith("/verify-receipt/")
    assert 'id="receipts"' in index
    assert data["receipt_verification"]["key_history"] in index
    assert receipts and all(consent_receipt_verify(r).valid for r in receipts)
    keys = {"keys": [k.as_json() for k in signing.key_history()]}
    result = run_steps(published_steps(index), receipts[0], keys, tmp_path / "from-export")
    assert result["python"].returncode == 0, result["python"].stderr


def test_signing_time_is_checked_against_the_key_period(settings):
    now = datetime.now(UTC)
    settings.GUARDIAN_SIGNING_KEY_VALID_FROM = now.isoformat()
    key = signing.current_key()
    assert key.signed_in_period(now) and not key.signed_in_period(now - timedelta(seconds=1))
