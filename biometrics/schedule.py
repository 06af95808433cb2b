"""The school's retention schedule in words, as its transparency page publishes it (BIPA 15(a)):
the windows `biometrics.due.erasure_due` applies, never other numbers."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from consent.models import School

from .due import ADULT, LEAVER, NOT_NOTIFIED, NOTICE_CHANGED, window_days


def retention_schedule(school: School) -> list[tuple[str, str]]:
    """The school's schedule in words, (when, what happens), from the windows `erasure_due`
    uses: published on the transparency page (BIPA 15(a))."""
    leaver = window_days(school, LEAVER)
    reconsent = window_days(school, NOTICE_CHANGED)
    return [
        (
            str(_("A parent withdraws or objects, or the child says no")),
            str(_("Matching stops at once and the data is erased at once.")),
        ),
        (
            str(_("The school stops using biometrics for a purpose")),
            str(
                _(
                    "Its recognition events are erased at once; photos and templates once no "
                    "purpose is in use for the child."
                )
            ),
        ),
        (
            str(_("A new version of a notice is published")),
            str(
                _(
                    "Matching on the old notice stops at once; the data is erased %(days)s days "
                    "later unless a parent gives consent on the new notice."
                )
                % {"days": reconsent}
            ),
        ),
        (
            str(_("A parent is added who has not been told yet")),
            str(
                _(
                    "Matching stops at once; the data is erased %(days)s days later unless "
                    "every parent is told."
                )
                % {"days": window_days(school, NOT_NOTIFIED)}
            ),
        ),
        (
            str(_("The student turns 18")),
            str(
                _(
                    "Parents' consent stops counting and matching stops at once; the data is "
                    "erased %(days)s days later unless the student gives their own consent."
                )
                % {"days": window_days(school, ADULT)}
            ),
        ),
        (
            str(_("The child leaves the school")),
            str(
                _("Matching stops at once; everything is erased %(days)s days after leaving.")
                % {"days": leaver}
            ),
        ),
        (
            str(_("Consent runs out")),
            str(
                _(
                    "Consent lasts %(days)s days; when it ends, the data is erased unless it "
                    "was given again."
                )
                % {"days": school.consent_validity_days}
            ),
        ),
        (
            str(_("Recognition events")),
            str(
                _("Deleted %(days)s days after each recognition.")
                % {"days": school.event_window_days}
            ),
        ),
        (
            str(_("Face templates and photos")),
            str(
                _("Erased at most %(days)s days after the last recognition or enrolment.")
                % {"days": school.template_max_age_days}
            ),
        ),
    ]
