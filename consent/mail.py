"""Every email to a parent is a template pair, written in the reader's language.

`templates/<name>.txt` is the body and `templates/<name>_subject.txt` the subject (one line);
both are rendered under `translation.override(language)`, so the catalogue's words, dates and
numbers are in that language, and the callers pass the school's texts in it
(`consent.texts`).
"""

from __future__ import annotations

from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import translation


def email_render(name: str, context: dict, *, language: str) -> tuple[str, str]:
    """(subject, body) of the template pair `name` in `language`."""
    with translation.override(language):
        subject = " ".join(render_to_string(f"{name}_subject.txt", context).split())
        body = render_to_string(f"{name}.txt", context)
    return subject, body


def email_message(name: str, context: dict, *, language: str, to: str) -> EmailMessage:
    """The email, ready to send (not sent)."""
    subject, body = email_render(name, context, language=language)
    return EmailMessage(subject=subject, body=body, to=[to])
