"""Writes of the school's texts per language: a notice version published with its text in
every language the school offers, a language's text added to a version published before the
school offered it, and a purpose's name, description and alternative in one language
(docs/languages.md).

Every one is audited. A notice version and its texts are never changed: each text's SHA-256 is
in the receipts of the decisions made on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from django.utils.translation import gettext as _

from ..actors import Actor
from ..audit import audit_record
from ..changes import audited_delete, audited_update
from ..errors import ConsentError
from ..languages import codes, language_name
from ..models import Notice, NoticeText, Purpose, PurposeText
from ..status import consent_status_refresh_school


def _not_offered(language: str) -> tuple[str, str]:
    return (
        "language_not_offered",
        _("The school does not offer %(language)s: add it to its languages first.")
        % {"language": language_name(language)},
    )


def _offered_check(school, language: str) -> None:
    """ConsentError `language_not_offered` unless the school offers the language."""
    if language not in school.offered() or language not in codes():
        raise ConsentError(*_not_offered(language))


def notice_texts_problems(school, texts: Mapping[str, str]) -> list[tuple[str, str]]:
    """What stops a notice version with these texts (language → text, the school's default
    language among them) from being published: (code, sentence) pairs, empty if nothing."""
    problems = []
    offered = school.offered()
    for language in offered:
        if not (texts.get(language) or "").strip():
            problems.append(
                (
                    "notice_text_missing",
                    _("The notice has no text in %(language)s, which the school offers.")
                    % {"language": language_name(language)},
                )
            )
    for language in texts:
        if language not in offered and (texts[language] or "").strip():
            problems.append(_not_offered(language))
    return problems


def notice_publish(
    *, purpose: Purpose, text: str, actor: Actor, texts: Mapping[str, str] | None = None
) -> Notice:
    """Publish a new notice version: `text` in the school's default language, `texts` in each
    other language the school offers (language → text). Grants on earlier versions stop
    counting (fresh consent).

    1. Refuse (ConsentError `notice_text_missing` / `language_not_offered`, nothing written)
       unless there is a text for every language the school offers, and only for those.
    2. Save the version and its texts, with one audit row naming each text's SHA-256.
    3. Store every child's statuses again.
    """
    school = purpose.school
    all_texts = {**(texts or {}), school.language: text}
    if problems := notice_texts_problems(school, all_texts):
        code = problems[0][0]
        raise ConsentError(code, " ".join(sentence for _code, sentence in problems))
    with transaction.atomic():
        last = purpose.notices.order_by("-version").first()
        notice = Notice.objects.create(
            purpose=purpose,
            version=(last.version + 1) if last else 1,
            text=text,
            language=school.language,
        )
        others = [
            NoticeText.objects.create(notice=notice, language=language, text=all_texts[language])
            for language in school.offered()
            if language != school.language
        ]
        audit_record(
            "consent.notice_published",
            actor=actor,
            school_id=purpose.school_id,
            data={
                "purpose": purpose.code,
                "version": notice.version,
                "sha256": notice.sha256,
                "language": notice.language,
                "texts": {t.language: t.sha256 for t in others},
            },
        )
        consent_status_refresh_school(purpose.school_id)
    return notice


def notice_text_add(*, notice: Notice, language: str, text: str, actor: Actor) -> NoticeText:
    """Add a language's text to a published version that has none in it (a language the
    school began to offer after publishing). The version stays the same for the consent rule:
    nobody's grant goes stale. ConsentError if it has one already or the school does not offer
    the language."""
    school = notice.purpose.school
    _offered_check(school, language)
    if not text.strip():
        raise ConsentError("notice_text_missing", _("The notice text is empty."))
    with transaction.atomic():
        if language == notice.language or notice.texts.filter(language=language).exists():
            raise ConsentError(
                "notice_text_exists",
                _("This version has a text in that language already; publish a new version."),
            )
        added = NoticeText.objects.create(notice=notice, language=language, text=text)
        audit_record(
            "consent.notice_text_added",
            actor=actor,
            school_id=school.pk,
            data={
                "purpose": notice.purpose.code,
                "version": notice.version,
                "language": language,
                "sha256": added.sha256,
            },
        )
    return added


def purpose_text_set(
    *,
    purpose: Purpose,
    language: str,
    name: str,
    description: str = "",
    alternative: str = "",
    actor: Actor,
) -> PurposeText:
    """The purpose's name, description and alternative in one language other than the one it
    was written in (made, or changed field by field), audited with each value before and
    after. ConsentError unless the school offers the language."""
    if language == purpose.language:
        raise ConsentError(
            "language_is_default", _("Change the purpose's own fields for its first language.")
        )
    _offered_check(purpose.school, language)
    values = {"name": name, "description": description, "alternative": alternative}
    with transaction.atomic():
        row, made = PurposeText.objects.get_or_create(
            purpose=purpose, language=language, defaults=values
        )
        if made:
            audit_record(
                "consent.purpose_text_changed",
                actor=actor,
                school_id=purpose.school_id,
                data={"purpose": purpose.code, "language": language, "id": row.pk},
            )
        else:
            audited_update(
                instance=row,
                values=values,
                action="consent.purpose_text_changed",
                actor=actor,
                school_id=purpose.school_id,
            )
    return row


def purpose_text_delete(*, text: PurposeText, actor: Actor) -> None:
    """Remove a language's texts of a purpose (its parents then read the school's default)."""
    audited_delete(
        text,
        action="consent.purpose_text_deleted",
        actor=actor,
        school_id=text.purpose.school_id,
        data={"purpose": text.purpose.code, "language": text.language},
    )
