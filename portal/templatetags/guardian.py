"""Words for the codes the parent's pages show (decisions, statuses), in the page's language."""

from django import template
from django.utils.translation import gettext_lazy as _

from biometrics.models import ErasureStatus
from biometrics.systems import system_for
from consent.accounts import is_child_account
from consent.models import Decision
from consent.texts import NoticeShown, PurposeWords, notice_shown, purpose_words

register = template.Library()

STATUS_WORDS = {
    "active": _("active"),
    "inactive": _("inactive"),
    **dict(ErasureStatus.choices),
}


@register.filter
def decision_label(code: str) -> str:
    """'withdraw' → 'Withdrawn' (translated); an unknown code is shown as it is."""
    return dict(Decision.choices).get(code, code)


@register.filter
def status_label(code: str) -> str:
    """A purpose's or an erasure's status code in words (translated)."""
    return STATUS_WORDS.get(code, code)


@register.filter
def is_child(user) -> bool:
    """A child's own account (it has no "My account" page: the child's page is all of it)."""
    return bool(getattr(user, "is_authenticated", False)) and is_child_account(user)


@register.filter
def words(purpose) -> PurposeWords:
    """A purpose's name, description and alternative in the page's language (consent.texts)."""
    return purpose_words(purpose)


@register.filter
def shown(notice) -> NoticeShown | None:
    """A notice version's text in the page's language, with its SHA-256 (consent.texts)."""
    return notice_shown(notice) if notice is not None else None


@register.filter
def system_label(step) -> str:
    """An erasure step's system in the page's language (its stored name stays English: the
    deletion receipt carries that); a holder by its name in that language."""
    if step.kind == "http":
        return step.holder.label() if step.holder is not None else step.system
    try:
        return str(system_for(step.kind).label) or step.system
    except KeyError:
        return step.system
