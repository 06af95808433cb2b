"""The languages a person reads Guardian in: the deployment's (settings.LANGUAGES), the ones a
school offers (`School.languages`), and which one a person gets.

A language is a code of settings.LANGUAGES ("en", "zh-hans"); adding one there (with its
catalogue) is all the code a new language needs (docs/languages.md). Nothing here stores a
language in a migration's choices, so a new one needs no migration either.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext_lazy as _


def codes() -> list[str]:
    """The deployment's languages, in settings order."""
    return [code for code, _name in settings.LANGUAGES]


def choices() -> list[tuple[str, str]]:
    return [(code, str(name)) for code, name in settings.LANGUAGES]


def supported(value: str | None) -> str:
    """The deployment's language for `value` ("zh-Hans", "zh-cn" → "zh-hans"), or "" if none."""
    if not value or len(value) > 20:
        return ""
    try:
        return translation.get_supported_language_variant(value.strip().lower())
    except LookupError:
        return ""


def language_name(code: str) -> str:
    """A language's name as settings.LANGUAGES gives it ("简体中文"), or its code."""
    return str(dict(settings.LANGUAGES).get(code, code))[:40]


def active() -> str:
    """The language active now (a request's, or an override's), as a deployment code."""
    return supported(translation.get_language()) or settings.LANGUAGE_CODE


def validate_language(value: str) -> None:
    if value and value not in codes():
        raise ValidationError(
            _("%(value)s is not one of this portal's languages."), params={"value": value[:20]}
        )


def validate_languages(value) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(_("Offer at least one language."))
    for code in value:
        validate_language(code)


def default_language() -> str:
    return settings.LANGUAGE_CODE


def default_languages() -> list[str]:
    """A new school offers the portal's default language."""
    return [settings.LANGUAGE_CODE]


def language_read(value: str | None) -> str:
    """The language of the notice text a person says they read (a decision form's or the
    API's `notice_language`): the request's own when not said; ConsentError `bad_language`
    for one the portal does not have."""
    from .errors import ConsentError  # noqa: PLC0415 - errors is a leaf; keep this one light

    if not value:
        return active()
    found = supported(value)
    if not found:
        raise ConsentError(
            "bad_language", "notice_language must be one of: " + ", ".join(codes()) + "."
        )
    return found


def validate_labels(value) -> None:
    """A name per language: {"zh-hans": "…"}, each key one of the portal's languages."""
    if not isinstance(value, dict):
        raise ValidationError(_('Write the names as {"zh-hans": "…"}.'))
    for code, label in value.items():
        validate_language(code)
        if not isinstance(label, str) or len(label) > 200:
            raise ValidationError(_("Each name is text of at most 200 characters."))


def label_in(name: str, labels: dict | None, language: str | None = None) -> str:
    """A configured name in `language` (the active one unless given), else as configured."""
    return (labels or {}).get(language or active()) or name
