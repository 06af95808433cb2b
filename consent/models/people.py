import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..languages import validate_language
from .schools import School


class StudentStatus(models.TextChoices):
    ON_ROLL = "on_roll", _("On roll")
    LEAVER = "leaver", _("Left the school")


class Student(models.Model):
    # Public identifier used in URLs and the parent API: never a sequential id.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Pseudonym used with holders and in the audit trail; unrelated to `id` and the name. A new
    # one replaces it when the child is enrolled again after an erasure (RetiredSubject).
    subject_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="students")
    external_id = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    date_of_birth = models.DateField(null=True, blank=True)
    class_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=StudentStatus.choices, default=StudentStatus.ON_ROLL
    )
    left_on = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["school", "name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "external_id"], name="uniq_student_ext_id")
        ]

    def __str__(self) -> str:
        return self.name

    def pseudonyms(self) -> list[str]:
        """The child's pseudonym now, then each one retired after an erasure, newest first:
        the audit trail names the child by all of them."""
        retired = self.retired_subjects.order_by("-retired_at", "-pk").values_list(
            "subject_id", flat=True
        )
        return [str(self.subject_id), *(str(s) for s in retired)]


class RetiredSubject(models.Model):
    """A pseudonym a child had until an erasure of everything held under it was verified.

    The child's next enrolment gets a new pseudonym, and this one is never given to anyone again:
    the erasure's receipt keeps naming it, holders may have tombstoned it, and a holder that
    still lists it holds a copy nobody may have (reconciliation erases it as unknown).
    """

    subject_id = models.UUIDField(unique=True, editable=False)
    # Kept when the student row goes, so the pseudonym stays retired.
    student = models.ForeignKey(
        Student, null=True, on_delete=models.SET_NULL, related_name="retired_subjects"
    )
    retired_at = models.DateTimeField()

    class Meta:
        ordering = ["-retired_at"]

    def __str__(self) -> str:
        return str(self.subject_id)


class Guardian(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guardian"
    )
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200)
    # Empty until the guardian chooses (the language chooser on any page): until then pages
    # follow their browser, and emails the school's language (consent.languages).
    language = models.CharField(
        max_length=10, blank=True, default="", validators=[validate_language]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    students = models.ManyToManyField(Student, through="Guardianship", related_name="guardians")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Guardianship(models.Model):
    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="guardianships")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="guardianships")
    parental_responsibility = models.BooleanField(default=True)
    relationship = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["guardian", "student"], name="uniq_guardianship")
        ]

    def __str__(self) -> str:
        return f"{self.guardian} → {self.student}"


class NotificationMethod(models.TextChoices):
    # Written only by the notice delivery, once the mail backend accepted the email.
    EMAIL = "email", _("Email accepted by the mail server")
    # Recorded by staff in admin: the date the letter was handed over or posted, and by whom.
    LETTER = "letter", _("Paper letter")
    # Rows written when a guardian was linked, before the notice was really emailed: nothing
    # was sent by the portal (see migration 0005). They still count, as they did.
    LEGACY = "legacy", _("Recorded at linking; no email was sent")


class Notification(models.Model):
    """The school told this guardian in writing it intends to use biometrics (PoFA s.26(2)).

    The consent rule reads `sent_at`: a row exists only once the notice really went out (the
    mail backend accepted it, `NoticeDelivery`) or staff recorded a paper letter."""

    guardianship = models.ForeignKey(
        Guardianship, on_delete=models.CASCADE, related_name="notifications"
    )
    method = models.CharField(
        max_length=20, choices=NotificationMethod.choices, default=NotificationMethod.LETTER
    )
    sent_at = models.DateTimeField(_("sent on"))
    note = models.CharField(max_length=300, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The staff member who recorded the letter."),
    )

    class Meta:
        ordering = ["-sent_at"]


class NotificationException(models.Model):
    """Why a guardian with parental responsibility could not be notified (PoFA s.27(1))."""

    class Reason(models.TextChoices):
        NOT_FOUND = "not_found", _("Cannot be found")
        LACKS_CAPACITY = "lacks_capacity", _("Lacks capacity")
        WELFARE = "welfare", _("Welfare of the child")
        NOT_PRACTICABLE = "not_practicable", _("Not reasonably practicable")

    guardianship = models.ForeignKey(
        Guardianship, on_delete=models.CASCADE, related_name="notification_exceptions"
    )
    reason = models.CharField(max_length=30, choices=Reason.choices)
    note = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
