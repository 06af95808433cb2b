"""Every family in its own language (docs/languages.md): the school's texts per language, the
parent reading and consenting in theirs, and every page and email in Simplified Chinese.

The first test is the issue's proof: with the demo data, every parent page, the export's
index.html and every email a parent can get, in zh-hans, hold no English sentence of the
school's texts or of the catalogue.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone, translation
from rest_framework.test import APIClient

from biometrics.models import FaceTemplate, Holder, RecognitionEvent
from biometrics.retention import _remind_send
from consent.models import (
    AuditEvent,
    ConsentDecision,
    Decision,
    Guardian,
    Guardianship,
    Notice,
    School,
)
from consent.notice_email import notice_email
from consent.receipts import consent_receipt_verify
from consent.services import (
    ConsentError,
    notice_publish,
    notice_text_add,
    purpose_create,
    school_policy_update,
)
from consent.texts import notice_shown, purpose_words
from portal.account import email_change_confirm_send, email_change_notice_send
from portal.auth import magic_link_issue, magic_link_send
from portal.campaigns import campaign_create
from portal.exports import export_build
from portal.management.commands.seed_demo import NOTICE, PURPOSES
from portal.models import Export, SignInAttempt
from portal.receivers import on_erasure_sealed
from portal.templatetags.guardian import STATUS_WORDS

from .conftest import bearer_client
from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, guardian, link
from .factories import purpose_with_notice as make_purpose
from .test_consent_status import page_form
from .test_i18n import PO_PATH, parse_po

ZH = "zh-hans"
_TAG = re.compile(r"<[^>]+>")
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def visible(markup: str) -> str:
    """The text a reader sees: no tags (so no attribute values), entities decoded, spaces
    collapsed."""
    without_scripts = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", markup, flags=re.S)
    return " ".join(html.unescape(_TAG.sub(" ", without_scripts)).split())


def sentences(text: str, min_words: int = 3) -> set[str]:
    """The English word runs of a text that are sentences (or long enough to be a phrase of
    one): split at placeholders and sentence ends, each piece of `min_words` words or more."""
    found = set()
    for piece in re.split(r"%\(\w+\)[sd]|%[sd]|(?<=[.:;!?])\s+|\n+", text):
        piece = " ".join(piece.split()).strip(" -—–:;,.")
        if len(_WORD.findall(piece)) >= min_words:
            found.add(piece)
    return found


def catalogue_sentences() -> set[str]:
    _header, entries = parse_po(PO_PATH)
    found: set[str] = set()
    for e in entries:
        if e.obsolete:
            continue
        found |= sentences(e.msgid)
        if e.msgid_plural:
            found |= sentences(e.msgid_plural)
    return found


def school_sentences() -> set[str]:
    """The demo school's own English texts: purpose names, descriptions, alternatives and
    notices, whole and sentence by sentence."""
    found: set[str] = set()
    for _code, name, desc, alt in PURPOSES:
        notice = NOTICE.format(name=name.lower(), desc=desc, alt=alt)
        found |= {name, desc, alt, notice}
        for text in (desc, alt, notice):
            found |= sentences(text)
    return found


def english_in(text: str, english: set[str]) -> list[str]:
    seen = " ".join(text.split())
    return sorted(
        s for s in english if re.search(rf"(?<![A-Za-z]){re.escape(s)}(?![A-Za-z])", seen)
    )


@pytest.fixture
def demo(db, settings, sent_jobs):
    """The demo school as `make run` seeds it; its holder cannot be reached from a test."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("seed_demo", stdout=io.StringIO())
    sent_jobs.clear()
    mail.outbox.clear()
    return School.objects.get(slug="demo")


def test_every_parent_page_and_email_in_chinese_has_no_english_sentence(
    demo, client, sent_jobs, django_capture_on_commit_callbacks
):
    english = catalogue_sentences() | school_sentences()
    assert len(english) > 300  # the catalogue's sentences and the demo's texts
    parent = Guardian.objects.get(email="parent@example.com")
    children = {s.name: s for s in parent.students.all()}
    grace, ada = children["Grace Demo"], children["Ada Demo"]
    shown: dict[str, str] = {}

    # The check finds English where there is some: the same page asked for in English.
    in_english = client.get("/sign-in/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert english_in(visible(in_english), english)

    # Signed out, the browser asks for Chinese.
    browser = {"HTTP_ACCEPT_LANGUAGE": ZH}
    shown["sign-in"] = client.get("/sign-in/", **browser).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/sign-in/", {"email": parent.email}, **browser)
    shown["sign-in sent"] = sent.content.decode()
    token = magic_link_issue(guardian=parent).token
    shown["sign-in confirm"] = client.get(f"/sign-in/{token}/", **browser).content.decode()
    shown["link invalid"] = client.get("/sign-in/nonsense/", **browser).content.decode()

    # Signed in, the parent chooses Chinese with the chooser: from now on it is theirs.
    client.force_login(parent.user)
    client.post("/i18n/setlang/", {"language": ZH, "next": "/children/"})
    parent.refresh_from_db()
    assert parent.language == ZH
    del client.cookies["django_language"]  # another device: the choice follows the guardian
    pages = ["/children/", "/account/", f"/schools/{demo.slug}/", "/verify-receipt/"]
    for child in children.values():
        pages += [f"/children/{child.pk}/", f"/children/{child.pk}/delete/"]
    template = FaceTemplate.objects.filter(student=grace).first()
    pages.append(f"/children/{grace.pk}/?show={template.pk}")
    for page in pages:
        r = client.get(page, HTTP_ACCEPT_LANGUAGE="en")  # the browser says English: ignored
        assert r.status_code == 200, page
        assert '<html lang="zh-hans">' in r.content.decode(), page
        shown[page] = r.content.decode()

    # A decision (its message on the page), a receipt checked, an export, an erasure.
    granted = client.post(
        f"/children/{ada.pk}/consent/",
        {"purpose": "library", "decision": "object"},
        follow=True,
    )
    shown["after a decision"] = granted.content.decode()
    receipt = ada.decisions.get().receipt
    shown["receipt checked"] = client.post(
        "/verify-receipt/", {"receipt": json.dumps(receipt)}
    ).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(f"/children/{grace.pk}/export/", follow=True)
    shown["export page"] = asked.content.decode()
    export = Export.objects.get(student=grace)
    assert export.language == ZH
    export_build(export_id=export.pk)
    export.refresh_from_db()
    download = client.get(f"/exports/{export.pk}/download/")
    package = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    shown["export index.html"] = package.read("index.html").decode()
    with django_capture_on_commit_callbacks(execute=True):
        erased = client.post(f"/children/{ada.pk}/delete/", follow=True)
    shown["erasure page"] = erased.content.decode()

    # Every email a parent can get, sent as the workers send them.
    attempt = SignInAttempt.objects.filter(guardian=parent).latest("at")
    magic_link_send(attempt_id=attempt.pk)
    for row in Guardianship.objects.filter(guardian=parent).select_related("student__school"):
        notice_email(row).send()
    campaign_create(school=demo, purpose=demo.purposes.get(code="library"), actor=TEST_ACTOR)
    grant = ConsentDecision.objects.filter(guardian=parent, decision="grant").first()
    _remind_send(grant, expires=timezone.now() + timedelta(days=30))
    on_erasure_sealed(sender=None, requests=[ada.erasures.get()])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/account/email/", {"email": "alex.new@example.org"})
    change = parent.email_changes.get()
    email_change_confirm_send(change_id=change.pk)
    change.confirmed_at = timezone.now()
    change.save(update_fields=["confirmed_at"])
    email_change_notice_send(change_id=change.pk)
    # Hers only (the second demo parent, who never chose, reads the school's language).
    outbox = [m for m in mail.outbox if {parent.email, "alex.new@example.org"} & set(m.to)]
    subjects = {m.subject for m in outbox}
    kinds = {
        "sign-in": "登录",
        "notice": "通知",
        "export": "下载",
        "erasure": "删除",
        "reminder": "到期",
        "campaign": "作出决定",
    }
    for kind, word in kinds.items():
        assert any(word in s for s in subjects), (kind, subjects)
    assert len(outbox) >= 9
    for message in outbox:
        shown[f"email: {message.subject}"] = f"{message.subject}\n{message.body}"

    # Device names are what the cameras report when they recognise a child (the staff API's
    # `device`), shown as reported: not the school's texts. They are taken out before looking.
    # So is what OpenSSL prints when a receipt checks out, quoted as the tool prints it.
    as_reported = set(RecognitionEvent.objects.values_list("device", flat=True))
    as_reported.add("Signature Verified Successfully")

    def seen(text: str) -> str:
        text = visible(text) if "<" in text else text
        for device in as_reported:
            text = text.replace(device, " ")
        return text

    # Status words and decisions are single words, dates hold month names: looked for too.
    with translation.override("en"):
        words = {str(w) for w in STATUS_WORDS.values()} | {str(w) for _v, w in Decision.choices}
    words |= {"January", "February", "March", "April", "June", "July", "August", "September"}
    words |= {"October", "November", "December"}
    english |= words
    problems = {
        name: found for name, text in shown.items() if (found := english_in(seen(text), english))
    }
    assert not problems, problems
    # The school's Chinese texts are what was shown instead.
    gate_zh = purpose_words(demo.purposes.get(code="gate_access"), ZH)
    assert gate_zh.name in visible(shown[f"/children/{grace.pk}/"])
    assert gate_zh.alternative in shown["export index.html"]
    assert "参考持有方" in visible(shown["export index.html"])


def test_a_grant_on_the_chinese_notice_records_its_language_and_hash(
    demo, django_capture_on_commit_callbacks
):
    parent = Guardian.objects.get(email="parent@example.com")
    ada = parent.students.get(name="Ada Demo")
    library = demo.purposes.get(code="library")
    notice = library.current_notice
    chinese = notice.texts.get(language=ZH)
    assert chinese.sha256 == hashlib.sha256(chinese.text.encode()).hexdigest() != notice.sha256
    api = bearer_client(parent)

    # The consents API in Chinese: ?lang= beats Accept-Language.
    got = api.get(f"/api/v1/children/{ada.pk}/consents/?lang={ZH}", HTTP_ACCEPT_LANGUAGE="en")
    row = next(p for p in got.json()["purposes"] if p["code"] == "library")
    assert row["notice_text"] == chinese.text
    assert row["notice_sha256"] == chinese.sha256
    assert row["notice_language"] == ZH
    assert row["name"] == "图书馆"
    by_header = api.get(f"/api/v1/children/{ada.pk}/consents/", HTTP_ACCEPT_LANGUAGE=ZH).json()
    assert next(p for p in by_header["purposes"] if p["code"] == "library") == row
    english = api.get(f"/api/v1/children/{ada.pk}/consents/?lang=en").json()
    english_row = next(p for p in english["purposes"] if p["code"] == "library")
    assert english_row["notice_sha256"] == notice.sha256
    assert english_row["notice_version"] == row["notice_version"] == notice.version

    # The grant, made as the GET was read (the request's language).
    r = api.post(
        f"/api/v1/children/{ada.pk}/consents/?lang={ZH}",
        {"purpose": "library", "decision": "grant", "notice_version": notice.version},
        format="json",
    )
    assert r.status_code == 201, r.json()
    receipt = r.json()["receipt"]
    decision = ConsentDecision.objects.get(receipt_id=receipt["consentReceiptID"])
    assert decision.notice_language == ZH
    assert decision.notice_sha256 == chinese.sha256
    assert receipt["noticeLanguage"] == receipt["language"] == ZH
    assert receipt["noticeSha256"] == chinese.sha256
    assert receipt["iso27560"]["privacy_notice"]["sha256"] == chinese.sha256
    assert receipt["services"][0]["service"] == "图书馆"
    assert consent_receipt_verify(receipt).valid

    # Both languages are the same notice version: the Chinese grant counts (active), the
    # English page says "you gave consent", and a new version makes it stale in both.
    assert r.json()["status"] == "active"
    english = api.get(f"/api/v1/children/{ada.pk}/consents/?lang=en").json()
    english_row = next(p for p in english["purposes"] if p["code"] == "library")
    assert english_row["status"] == "active" and english_row["i_granted"]
    assert english_row["decisions"][0]["notice_version"] == notice.version
    with django_capture_on_commit_callbacks(execute=True):
        notice_publish(
            purpose=library,
            text="Library notice v2",
            texts={ZH: "图书馆告知书第2版"},
            actor=TEST_ACTOR,
        )
    for lang in ("en", ZH):
        after = api.get(f"/api/v1/children/{ada.pk}/consents/?lang={lang}").json()
        stale = next(p for p in after["purposes"] if p["code"] == "library")
        assert stale["status"] == "inactive" and stale["reason_code"] == "notice_changed"
    # A parent who read the English text of the same version is recorded with it.
    r = api.post(
        f"/api/v1/children/{ada.pk}/consents/",
        {"purpose": "library", "decision": "grant", "notice_version": 2, "notice_language": "en"},
        format="json",
        HTTP_ACCEPT_LANGUAGE=ZH,
    )
    assert r.status_code == 201
    decision = ConsentDecision.objects.get(receipt_id=r.json()["receipt"]["consentReceiptID"])
    assert (decision.notice_language, decision.notice_version) == ("en", 2)
    assert decision.notice_sha256 == Notice.hash_text("Library notice v2")


def test_the_web_form_records_the_text_the_page_showed(demo, client):
    parent = Guardian.objects.get(email="parent@example.com")
    ada = parent.students.get(name="Ada Demo")
    client.force_login(parent.user)
    page = client.get(f"/children/{ada.pk}/", HTTP_ACCEPT_LANGUAGE=ZH).content.decode()
    assert 'name="notice_language" value="zh-hans"' in page
    notice = demo.purposes.get(code="attendance").current_notice
    client.post(
        f"/children/{ada.pk}/consent/",
        {
            "purpose": "attendance",
            "decision": "grant",
            "notice_version": notice.version,
            "notice_language": ZH,
        },
        HTTP_ACCEPT_LANGUAGE=ZH,
    )
    decision = ada.decisions.get(purpose__code="attendance")
    assert decision.notice_language == ZH
    assert decision.notice_sha256 == notice.texts.get(language=ZH).sha256


# --- The school's texts ---------------------------------------------------------------------


@pytest.fixture
def bilingual(db):
    school = SchoolFactory(slug="bilingual", name="Bilingual School")
    school_policy_update(school=school, languages=["en", ZH], actor=TEST_ACTOR)
    return school


def test_a_notice_is_published_only_with_a_text_in_every_offered_language(bilingual):
    purpose = make_purpose(SchoolFactory(slug="plain"), "gate_access")  # English only: fine
    assert purpose.current_notice.texts.count() == 0
    gate = purpose_create(school=bilingual, code="gate", name="Gate", actor=TEST_ACTOR)
    with pytest.raises(ConsentError) as refused:
        notice_publish(purpose=gate, text="Gate notice", actor=TEST_ACTOR)
    assert refused.value.code == "notice_text_missing"
    assert not gate.notices.exists()
    with pytest.raises(ConsentError) as refused:
        notice_publish(
            purpose=gate, text="Gate notice", texts={ZH: "闸机告知书", "fr": "x"}, actor=TEST_ACTOR
        )
    assert refused.value.code == "language_not_offered"
    notice = notice_publish(
        purpose=gate, text="Gate notice", texts={ZH: "闸机告知书"}, actor=TEST_ACTOR
    )
    assert notice_shown(notice, ZH).text == "闸机告知书"
    assert notice_shown(notice, "en").text == "Gate notice"
    with pytest.raises(ConsentError):
        notice_text_add(notice=notice, language=ZH, text="again", actor=TEST_ACTOR)


def test_a_purpose_is_enabled_only_with_its_texts_in_every_offered_language(bilingual):
    """A parent who reads Chinese is never shown an English purpose the school switched on:
    enabling waits for the purpose's and its notice's Chinese texts."""
    from consent.services import dpia_sign_off, purpose_text_set, purpose_update

    from .factories import dpo_of

    gate = purpose_create(
        school=bilingual,
        code="gate",
        name="Gate",
        description="Opens the gate.",
        alternative="A card.",
        dpia_reference="DPIA-gate",
        actor=TEST_ACTOR,
    )
    notice_publish(purpose=gate, text="Gate notice", texts={ZH: "闸机告知书"}, actor=TEST_ACTOR)
    dpia_sign_off(purpose=gate, signed_by=dpo_of(bilingual), actor=TEST_ACTOR)
    with pytest.raises(ConsentError) as refused:
        purpose_update(purpose=gate, enabled=True, actor=TEST_ACTOR)
    assert refused.value.code == "purpose_not_ready"
    assert "简体中文" in refused.value.detail
    gate.refresh_from_db()
    assert not gate.enabled

    purpose_text_set(
        purpose=gate,
        language=ZH,
        name="闸机",
        description="开闸。",
        alternative="门卡。",
        actor=TEST_ACTOR,
    )
    purpose_update(purpose=gate, enabled=True, actor=TEST_ACTOR)
    gate.refresh_from_db()
    assert gate.enabled
    assert purpose_words(gate, ZH).name == "闸机"


def test_admin_edits_the_texts_side_by_side(bilingual, admin_client):
    page = "/admin/consent/purpose/add/"
    data = {
        **page_form(admin_client, page),
        "school": bilingual.pk,
        "code": "library",
        "name": "Library",
        "alternative": "A library card.",
        "texts-TOTAL_FORMS": "1",
        "texts-0-language": ZH,
        "texts-0-name": "图书馆",
        "texts-0-alternative": "借书卡。",
        "notices-TOTAL_FORMS": "1",
        "notices-0-text": "Library notice",
    }
    refused = admin_client.post(page, data)
    assert refused.status_code == 200
    assert "The notice has no text in 简体中文" in refused.content.decode()
    assert not bilingual.purposes.exists()
    r = admin_client.post(page, {**data, "notices-0-text_zh_hans": "图书馆告知书"})
    assert r.status_code == 302, r.content.decode()[:2000]
    library = bilingual.purposes.get(code="library")
    assert purpose_words(library, ZH).name == "图书馆"
    assert notice_shown(library.current_notice, ZH).text == "图书馆告知书"
    actions = set(
        AuditEvent.objects.filter(school_id=bilingual.pk).values_list("action", flat=True)
    )
    assert {"consent.purpose_text_changed", "consent.notice_published"} <= actions
    change = admin_client.get(f"/admin/consent/purpose/{library.pk}/change/").content.decode()
    assert "图书馆告知书" in change and "Library notice" in change


def test_a_language_the_school_does_not_offer_reads_the_default(bilingual):
    gate = make_purpose(SchoolFactory(slug="plain"), "gate_access")
    assert purpose_words(gate, ZH).language == "en"
    shown = notice_shown(gate.current_notice, ZH)
    assert (shown.language, shown.sha256) == ("en", gate.current_notice.sha256)


# --- Language follows the person -------------------------------------------------------------


def test_an_unset_language_follows_the_browser_until_chosen(school, purposes, client):
    parent = guardian("unset@example.com")
    assert parent.language == ""
    child = StudentFactory(school=school)
    link(parent, child)
    client.force_login(parent.user)
    assert (
        '<html lang="zh-hans">'
        in client.get("/children/", HTTP_ACCEPT_LANGUAGE=ZH).content.decode()
    )
    assert (
        '<html lang="en">' in client.get("/children/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    )
    client.post("/i18n/setlang/", {"language": "en", "next": "/children/"})
    parent.refresh_from_db()
    assert parent.language == "en"
    client.cookies.clear()
    client.force_login(parent.user)
    assert '<html lang="en">' in client.get("/children/", HTTP_ACCEPT_LANGUAGE=ZH).content.decode()


def test_the_api_refuses_a_language_it_does_not_have(api_a, child_a):
    r = api_a.get(f"/api/v1/children/{child_a.pk}/consents/?lang=xx")
    assert r.status_code == 400
    assert r.json()["error"] == "bad_language"
    r = api_a.post(
        f"/api/v1/children/{child_a.pk}/consents/",
        {
            "purpose": "attendance",
            "decision": "grant",
            "notice_version": 1,
            "notice_language": "xx",
        },
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"] == "bad_language"
    assert not child_a.decisions.filter(purpose__code="attendance").exists()


def test_a_sign_in_link_is_written_in_the_language_it_was_asked_in(
    school, purposes, sent_jobs, django_capture_on_commit_callbacks
):
    parent = guardian("asks@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post(
            "/api/v1/auth/magic-link/",
            {"email": parent.email},
            format="json",
            HTTP_ACCEPT_LANGUAGE=ZH,
        )
    attempt = SignInAttempt.objects.get(guardian=parent)
    assert attempt.language == ZH
    magic_link_send(attempt_id=attempt.pk)
    (message,) = mail.outbox
    with translation.override(ZH):
        assert translation.gettext("Sign in") in message.subject or "登录" in message.subject


def test_the_holder_is_named_in_the_readers_language(demo):
    holder = Holder.objects.get(school=demo)
    assert holder.label(ZH) == "参考持有方（闸机控制器）"
    assert holder.label("en") == holder.name


def test_the_account_page_says_whether_a_language_was_chosen(web_a, parent_a):
    page = web_a.get("/account/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "You have not chosen a language" in page
    r = web_a.post("/i18n/setlang/", {"language": "en", "next": "/account/#language"})
    assert r.status_code == 302 and r["Location"] == "/account/#language"
    parent_a.refresh_from_db()
    assert parent_a.language == "en"
    page = web_a.get("/account/", HTTP_ACCEPT_LANGUAGE=ZH).content.decode()
    assert '<html lang="en">' in page  # chosen: the browser's Chinese no longer decides
    assert "You chose the language below" in page
    assert AuditEvent.objects.filter(action="roster.guardian_changed").exists()
