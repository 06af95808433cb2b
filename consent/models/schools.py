import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

# Legal bounds on the per-school retention policy (SPEC §6; legal.md US1, US2).
LEAVER_WINDOW_MAX_DAYS = 30  # Illinois 105 ILCS 5/10-20.40: destroy within 30 days of leaving
TEMPLATE_MAX_AGE_MAX_DAYS = 3 * 365  # BIPA 15(a): last interaction + 3 years at the latest
# After a new notice version, matching on the old one stops at once; the data waits at most this
# long for consent on the new notice (SPEC §2: each window at most 30 days).
RECONSENT_WINDOW_MAX_DAYS = 30


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
        if errors:
            raise ValidationError(errors)


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["school", "code"]
        constraints = [models.UniqueConstraint(fields=["school", "code"], name="uniq_purpose_code")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def current_notice(self) -> "Notice | None":
        # Uses the prefetch cache when the caller prefetched notices.
        notices = list(self.notices.all())
        return max(notices, key=lambda n: n.version) if notices else None

    def enablement_problems(self) -> list[str]:
        """What stops this purpose from being enabled (SPEC §2.1). Empty means it may be."""
        problems = []
        if self.current_notice is None:
            problems.append(str(_("It has no notice.")))
        if not self.alternative.strip():
            problems.append(str(_("It does not describe the non-biometric alternative.")))
        if not self.dpia_reference.strip():
            problems.append(str(_("It has no DPIA reference.")))
        return problems

    def clean(self) -> None:
        if self.enabled and self.pk and (problems := self.enablement_problems()):
            raise ValidationError({"enabled": " ".join(problems)})
        if self.enabled and not self.pk:
            raise ValidationError({"enabled": _("Save the purpose with its notice first.")})


class Notice(models.Model):
    """A version of the written notice for a purpose. Immutable once published."""

    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="notices")
    version = models.PositiveIntegerField()
    text = models.TextField()
    sha256 = models.CharField(max_length=64, editable=False)
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
