from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..languages import (
    default_language,
    default_languages,
    language_name,
    validate_language,
    validate_languages,
)

# Legal bounds on the per-school retention policy (docs/retention.md, "The school's policy").
LEAVER_WINDOW_MAX_DAYS = 30  # Illinois 105 ILCS 5/10-20.40: destroy within 30 days of leaving
TEMPLATE_MAX_AGE_MAX_DAYS = 3 * 365  # BIPA 15(a): last interaction + 3 years at the latest
# After a new notice version, matching on the old one stops at once; the data waits at most this
# long for consent on the new notice (SPEC §2: each window at most 30 days).
RECONSENT_WINDOW_MAX_DAYS = 30

# Bounds on the per-school face matching policy (SPEC §2, §9; research/face.md). The model's
# loss puts each adult identity in a ball of radius 0.6, and its authors warn that children are
# mixed up more easily at 0.6: a school may only be stricter. Below 0.3 the same child's photos
# taken on different days stop matching.
FACE_TOLERANCE_MIN = 0.3
FACE_TOLERANCE_MAX = 0.6
# A margin below 0.02 is within a template's own jitter (it moves by 0.015-0.04 when the
# detected face box moves by 2 px), so it could not tell two children apart.
FACE_MARGIN_MIN = 0.02
FACE_MARGIN_MAX = 0.2
FACE_MARGIN_DEFAULT = 0.05
# The age from which a child signs in to their own page and says no themselves (consent.ages).
COMPETENCE_AGE_MIN = 12
COMPETENCE_AGE_MAX = 16


def default_face_tolerance() -> float:
    """A new school starts at the deployment's FACE_TOLERANCE setting (0.6 unless set)."""
    return float(settings.FACE_TOLERANCE)


TEXTS_MISSING = _(
    "It has no text in %(languages)s, which the school offers: add the purpose's and its "
    "notice's texts in every language first."
)
DPIA_NOT_SIGNED_OFF = _("Its DPIA (%(reference)s) has not been signed off by the school's DPO.")


class School(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300, blank=True)
    website = models.URLField(blank=True)
    dpo_name = models.CharField(_("DPO name"), max_length=200, blank=True)
    dpo_email = models.EmailField(_("DPO email"), blank=True)
    jurisdiction = models.CharField(max_length=20, default="GB")
    leaver_window_days = models.PositiveIntegerField(default=30)
    reconsent_window_days = models.PositiveIntegerField(
        _("re-consent window (days)"),
        default=RECONSENT_WINDOW_MAX_DAYS,
        help_text=_(
            "After a new notice version, how long the data waits for consent on the new "
            "notice before it is erased (at most 30 days). Matching stops at once."
        ),
    )
    event_window_days = models.PositiveIntegerField(default=30)
    template_max_age_days = models.PositiveIntegerField(default=TEMPLATE_MAX_AGE_MAX_DAYS)
    consent_validity_days = models.PositiveIntegerField(default=365)
    export_expiry_hours = models.PositiveIntegerField(default=72)
    face_tolerance = models.FloatField(
        _("face match tolerance"),
        default=default_face_tolerance,
        help_text=_(
            "Two faces match when their distance is at most this (0.3 to 0.6). The model's "
            "authors warn that it mixes up children more easily at 0.6 and suggest stricter "
            "(smaller) values for them."
        ),
    )
    face_match_margin = models.FloatField(
        _("ambiguity margin"),
        default=FACE_MARGIN_DEFAULT,
        help_text=_(
            "A match is refused when another child's template is within this distance of the "
            "nearest one (0.02 to 0.2)."
        ),
    )
    competence_age = models.PositiveSmallIntegerField(
        _("competence age"),
        default=COMPETENCE_AGE_MIN,
        help_text=_(
            "From this age (12 to 16) a child may sign in to their own page, see what is held "
            "and refuse themselves. Scotland presumes 12; a school under China's PIPL sets 14."
        ),
    )
    # The school's default language (its texts are written in it first; a parent asking for a
    # language the school does not offer reads this one) and every language it offers: each
    # purpose and each notice version has its texts in all of them (consent.texts).
    language = models.CharField(
        _("default language"),
        max_length=10,
        default=default_language,
        validators=[validate_language],
        help_text=_("The language the school writes its texts in first; it must be offered."),
    )
    languages = models.JSONField(
        _("languages offered"),
        default=default_languages,
        validators=[validate_languages],
        help_text=_("Every purpose and notice has its texts in each of these languages."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.leaver_window_days > LEAVER_WINDOW_MAX_DAYS:
            errors["leaver_window_days"] = _(
                "At most 30 days: Illinois school code requires destruction within 30 days "
                "of a student leaving."
            )
        if self.reconsent_window_days > RECONSENT_WINDOW_MAX_DAYS:
            errors["reconsent_window_days"] = _(
                "At most 30 days: grants on a superseded notice no longer count, so the data "
                "may wait for fresh consent no longer than that."
            )
        if self.template_max_age_days > TEMPLATE_MAX_AGE_MAX_DAYS:
            errors["template_max_age_days"] = _(
                "At most 3 years after the last interaction (BIPA 15(a))."
            )
        if not FACE_TOLERANCE_MIN <= self.face_tolerance <= FACE_TOLERANCE_MAX:
            errors["face_tolerance"] = _(
                "Between 0.3 and 0.6: the model was built for adults at 0.6 and its authors "
                "suggest stricter for children; below 0.3 a child stops matching their own face."
            )
        if not FACE_MARGIN_MIN <= self.face_match_margin <= FACE_MARGIN_MAX:
            errors["face_match_margin"] = _(
                "Between 0.02 and 0.2: a smaller margin is within a template's own jitter."
            )
        if not COMPETENCE_AGE_MIN <= self.competence_age <= COMPETENCE_AGE_MAX:
            errors["competence_age"] = _(
                "Between 12 and 16: Scotland presumes a child of 12 understands; PIPL asks a "
                "parent's consent below 14."
            )
        if isinstance(self.languages, list) and self.language not in self.languages:
            errors["languages"] = _("The school's default language must be one it offers.")
        if errors:
            raise ValidationError(errors)

    def offered(self) -> list[str]:
        """The languages offered, the default first."""
        others = [code for code in self.languages or [] if code != self.language]
        return [self.language, *others]


class StaffMembership(models.Model):
    """A staff account's access to one school (admin scoping)."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("School admin")
        ENROLMENT = "enrolment", _("Enrolment operator")
        DPO = "dpo", _("Data protection officer")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="school_memberships"
    )
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ADMIN)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "school"], name="uniq_staff_membership")
        ]


class Purpose(models.Model):
    """A use of biometrics (gate access, attendance...) that needs its own consent."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="purposes")
    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    alternative = models.TextField(
        blank=True,
        help_text=_("The non-biometric alternative offered to children without consent."),
    )
    dpia_reference = models.CharField(_("DPIA reference"), max_length=200, blank=True)
    enabled = models.BooleanField(default=False)
    # The language of `name`, `description` and `alternative` (the school's default when it was
    # made); its other languages are `texts` (PurposeText).
    language = models.CharField(max_length=10, default="en", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["school", "code"]
        constraints = [models.UniqueConstraint(fields=["school", "code"], name="uniq_purpose_code")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def current_notice(self) -> Notice | None:
        # Uses the prefetch cache when the caller prefetched notices.
        notices = list(self.notices.all())
        return max(notices, key=lambda n: n.version) if notices else None

    def enablement_problems(self) -> list[str]:
        """What stops this purpose from being enabled (docs/consent-rule.md, "1. The school uses
        the purpose, properly configured"). Empty means it may be."""
        problems = []
        if self.current_notice is None:
            problems.append(str(_("It has no notice.")))
        if not self.alternative.strip():
            problems.append(str(_("It does not describe the non-biometric alternative.")))
        if not self.dpia_reference.strip():
            problems.append(str(_("It has no DPIA reference.")))
        return problems

    def dpia_sign_off(self) -> DpiaSignOff | None:
        """The DPO's sign-off of the DPIA document this purpose names now, if there is one."""
        reference = self.dpia_reference.strip()
        if not reference or not self.pk:
            return None
        # Newest first (the model's order); uses the prefetch cache when there is one.
        return next(
            (s for s in self.dpia_sign_offs.all() if s.document_reference == reference), None
        )

    def enabling_problems(self, *, before: Purpose | None) -> list[str]:
        """What stops this purpose, with its values as they are on this instance, from being
        saved enabled, given the row as it was `before` (UK GDPR Art 35: no deployment without
        a DPIA the DPO signed off).

        The rule's own configuration check (`enablement_problems`) always applies. The DPO's
        sign-off is asked for when the purpose is being enabled or names another DPIA document
        while enabled: purposes enabled before sign-offs were recorded stay enabled, and are
        flagged in admin as "DPIA not signed off" (their staff cannot invent a sign-off)."""
        if not self.enabled:
            return []
        problems = self.enablement_problems()
        enabling = before is None or not before.enabled
        new_document = before is not None and before.dpia_reference != self.dpia_reference
        if (enabling or new_document) and self.dpia_reference.strip():
            if self.dpia_sign_off() is None:
                problems.append(str(DPIA_NOT_SIGNED_OFF % {"reference": self.dpia_reference}))
        if enabling and (missing := self.languages_missing()):
            listed = ", ".join(language_name(code) for code in missing)
            problems.append(str(TEXTS_MISSING % {"languages": listed}))
        return problems

    def languages_missing(self) -> list[str]:
        """The languages the school offers in which this purpose, or its current notice, has
        no text (a parent reading one of them would be shown another language's)."""
        notice = self.current_notice
        have_purpose = {self.language, *(t.language for t in self.texts.all())}
        have_notice = (
            {notice.language, *(t.language for t in notice.texts.all())} if notice else set()
        )
        return [
            code
            for code in self.school.offered()
            if code not in have_purpose or (notice is not None and code not in have_notice)
        ]

    def clean(self) -> None:
        if self.enabled and not self.pk:
            raise ValidationError({"enabled": _("Save the purpose with its notice first.")})
        before = type(self)._default_manager.filter(pk=self.pk).first()
        if problems := self.enabling_problems(before=before):
            raise ValidationError({"enabled": " ".join(problems)})


class Notice(models.Model):
    """A version of the written notice for a purpose. Immutable once published."""

    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="notices")
    version = models.PositiveIntegerField()
    text = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
    # The language of `text` (the school's default when published); the version's text in each
    # other language the school offers is one of `texts` (NoticeText), published with it.
    language = models.CharField(max_length=10, default="en", editable=False)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["purpose", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["purpose", "version"], name="uniq_notice_version")
        ]

    def __str__(self) -> str:
        return f"{self.purpose.code} v{self.version}"

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def save(self, *args, **kwargs) -> None:
        if self.pk:
            raise ValidationError("A published notice cannot be changed; publish a new version.")
        self.sha256 = self.hash_text(self.text)
        super().save(*args, **kwargs)


class PurposeText(models.Model):
    """A purpose's name, description and alternative in one more language the school offers."""

    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="texts")
    language = models.CharField(max_length=10, validators=[validate_language])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    alternative = models.TextField(blank=True)

    class Meta:
        ordering = ["purpose", "language"]
        constraints = [
            models.UniqueConstraint(fields=["purpose", "language"], name="uniq_purpose_text")
        ]

    def __str__(self) -> str:
        return f"{self.purpose.code} ({self.language})"


class NoticeText(models.Model):
    """A notice version's text in one more language. Published with the version (or, for a
    language the school offers later, added to it), never changed: a parent's receipt names its
    SHA-256. Every language's text is the same version for the consent rule."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="texts")
    language = models.CharField(max_length=10, validators=[validate_language])
    text = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["notice", "language"]
        constraints = [
            models.UniqueConstraint(fields=["notice", "language"], name="uniq_notice_text")
        ]

    def __str__(self) -> str:
        return f"{self.notice} ({self.language})"

    def save(self, *args, **kwargs) -> None:
        if self.pk:
            raise ValidationError("A published notice cannot be changed; publish a new version.")
        self.sha256 = Notice.hash_text(self.text)
        super().save(*args, **kwargs)


class DpiaSignOff(models.Model):
    """The school's DPO signed off the data protection impact assessment of a purpose
    (UK GDPR Art 35, the DPO consulted). Append-only: a new document needs a new sign-off.

    A purpose is enabled only while its `dpia_reference` names a signed-off document
    (`consent.services.purpose_update`)."""

    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="dpia_sign_offs")
    document_reference = models.CharField(_("DPIA document reference"), max_length=200)
    # PROTECT: the record says who signed; the account is deactivated, not deleted.
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="dpia_sign_offs"
    )
    signed_at = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-signed_at", "-pk"]
        verbose_name = "DPIA sign-off"

    def __str__(self) -> str:
        return f"{self.document_reference} ({self.signed_at:%Y-%m-%d})"
