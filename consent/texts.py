"""The school's texts in a person's language: one place answers "which name, description,
alternative and notice text does this person read", for the pages, the API, the export, the
receipts and the emails alike (docs/languages.md).

A purpose's own fields and a notice's own text are in the language they were written in
(`Purpose.language`, `Notice.language`: the school's default then); each other language the
school offers is a `PurposeText` / `NoticeText`. Asked for a language, a text is that
language's, or else the one the school wrote first (its default). Callers pass a purpose or
notice loaded with its `texts` prefetched (`consent.rules.load_for_rule` does) or not (then
they are queried).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .languages import active
from .models import Notice, NoticeText, Purpose, PurposeText, School


@dataclass(frozen=True)
class PurposeWords:
    language: str
    name: str
    description: str
    alternative: str


@dataclass(frozen=True)
class NoticeShown:
    """The text of one notice version as one person reads it, and its SHA-256."""

    version: int
    language: str
    text: str
    sha256: str


def _in(rows, language: str):
    return next((row for row in rows if row.language == language), None)


def purpose_words(purpose: Purpose, language: str | None = None) -> PurposeWords:
    """The purpose's name, description and alternative in `language` (the active one unless
    given), else as the school wrote them first."""
    language = language or active()
    if language != purpose.language:
        found: PurposeText | None = _in(purpose.texts.all(), language)
        if found is not None:
            return PurposeWords(language, found.name, found.description, found.alternative)
    return PurposeWords(purpose.language, purpose.name, purpose.description, purpose.alternative)


def notice_shown(notice: Notice, language: str | None = None) -> NoticeShown:
    """The notice version's text in `language` (the active one unless given), else the text
    the school published first; with that text's language and SHA-256."""
    language = language or active()
    if language != notice.language:
        found: NoticeText | None = _in(notice.texts.all(), language)
        if found is not None:
            return NoticeShown(notice.version, found.language, found.text, found.sha256)
    return NoticeShown(notice.version, notice.language, notice.text, notice.sha256)


def notice_languages(notice: Notice) -> list[str]:
    """The languages this notice version has a text in."""
    return [notice.language, *(t.language for t in notice.texts.all())]


def guardian_language(guardian, *, school=None) -> str:
    """The language to write to a guardian in, away from a request (emails from workers): the
    one they chose, else their child's school's default (`school`, or their first child's),
    else the portal's."""
    if guardian.language:
        return guardian.language
    if school is None:
        school = (
            School.objects.filter(students__guardianships__guardian=guardian).order_by("pk").first()
        )
    return school.language if school is not None else settings.LANGUAGE_CODE
