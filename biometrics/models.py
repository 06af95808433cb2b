import hmac
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.languages import label_in, validate_labels
from consent.models import Purpose, School, Student

from .holder_guard import GuardedHolderClient, holder_url_problem
from .holders.client import HolderClient
from .kek import SealedSecretUnreadable, kek_open, kek_seal


class ChildKey(models.Model):
    """The child's data key, wrapped by the key-encryption key. Destroying it shreds the data.

    Stored in the separate key-store database (see portal.dbrouter), hence a plain uuid and no
    foreign key to the student: a backup of the main database never contains the keys.
    """

    student_id = models.UUIDField(unique=True)
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)


class PhotoStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    ENROLLED = "enrolled", _("Enrolled")
    REJECTED = "rejected", _("Rejected")


class Photo(models.Model):
    """An enrolment photo. The bytes live encrypted in media storage, never in the database."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="photos")
    status = models.CharField(
        max_length=20, choices=PhotoStatus.choices, default=PhotoStatus.PENDING
    )
    reason = models.CharField(max_length=60, blank=True)
    source = models.CharField(max_length=60, default="capture_station")
    captured_at = models.DateTimeField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True)
    height = models.PositiveIntegerField(null=True)
    content_type = models.CharField(max_length=50, default="image/jpeg")
    size = models.PositiveIntegerField(default=0)
    storage_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-captured_at"]


class FaceTemplate(models.Model):
    """A 128-d face embedding, stored only as AES-GCM ciphertext under the child's key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="templates")
    photo = models.ForeignKey(
        Photo, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    model = models.CharField(max_length=100, default="dlib_face_recognition_resnet_model_v1")
    model_version = models.CharField(max_length=50, default="face_recognition 1.3.0")
    detector = models.CharField(max_length=50, default="hog")
    landmarks = models.CharField(max_length=20, default="5-point")
    dimensions = models.PositiveSmallIntegerField(default=128)
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class RecognitionEvent(models.Model):
    student = models.ForeignKey(
        Student, on_delete=models.CASCADE, related_name="recognition_events"
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+")
    device = models.CharField(max_length=100)
    distance = models.FloatField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["student", "-at"]),
            models.Index(fields=["at"]),
        ]


class Holder(models.Model):
    """A connected system outside the portal that holds copies (speaks the holder protocol).

    Its HMAC secret signs requests that read and erase children's templates: it is stored only
    sealed under the key-encryption key (`biometrics.kek`) and is write-only — `secret` can be
    set (`Holder(secret=…)`, `holder.secret = …`) but never read back; only `client()` opens it.
    """

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="holders")
    name = models.CharField(max_length=100)
    # The name as parents read it in the school's other languages ({"zh-hans": "…"}); `name`
    # is the stable one erasure steps and receipts carry, and the label in any other language.
    labels = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_labels],
        help_text=_('The name in other languages, as parents read it: {"zh-hans": "校门闸机"}.'),
    )
    base_url = models.URLField()
    sealed_secret = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    receives_templates = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["school", "name"]
        constraints = [models.UniqueConstraint(fields=["school", "name"], name="uniq_holder_name")]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str | None = None) -> str:
        """The holder's name in `language` (the active one unless given)."""
        return label_in(self.name, self.labels, language)

    def _secret_context(self) -> str:
        # Bound to the school (a holder never moves): a sealed secret copied to another
        # school's holder does not open.
        return f"holder-secret:{self.school_id}"

    @property
    def secret(self) -> str:
        raise AttributeError("a holder's secret is write-only")

    @secret.setter
    def secret(self, value: str) -> None:
        self.sealed_secret = self.seal(value)

    def seal(self, value: str) -> str:
        """`value` sealed as this holder's secret (nothing is set)."""
        return kek_seal(value, context=self._secret_context())

    def has_secret(self, value: str) -> bool:
        """Whether `value` is the secret stored (to leave an unchanged secret unchanged)."""
        try:
            stored = kek_open(self.sealed_secret, context=self._secret_context())
        except SealedSecretUnreadable:
            return False
        return hmac.compare_digest(stored.encode(), value.encode())

    def clean(self) -> None:
        super().clean()
        if self.base_url and (problem := holder_url_problem(self.base_url)):
            raise ValidationError({"base_url": problem})

    def client(self, timeout: float = 5.0) -> HolderClient:
        """A signed-request client for this holder, whose connections reach only addresses
        `holder_guard` allows (raises ValueError on a bad URL or a secret that does not open)."""
        secret = kek_open(self.sealed_secret, context=self._secret_context())
        return GuardedHolderClient(self.base_url, secret, timeout=timeout)


class TemplateCopy(models.Model):
    """The portal's record that a holder was sent (or is to be sent) a copy of a template.

    A copy not stored yet is tried again from `next_attempt_at` (backing off after each
    failure) until it is stored, or the child's erasure removes the template and with it the
    copy; the erasure watchdog re-drives any whose task was lost."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        STORED = "stored", _("Stored")
        FAILED = "failed", _("Failed, retrying")

    template = models.ForeignKey(FaceTemplate, on_delete=models.CASCADE, related_name="copies")
    holder = models.ForeignKey(Holder, on_delete=models.CASCADE, related_name="copies")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    stored_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "holder"], name="uniq_template_copy")
        ]


class ErasureStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    VERIFIED = "verified", _("Verified")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")


#: An erasure in one of these states is still open: one per child at a time.
OPEN = [ErasureStatus.PENDING, ErasureStatus.RUNNING, ErasureStatus.NEEDS_ATTENTION]


class ErasureRequest(models.Model):
    """One erasure of everything held about a child. Kept afterwards as a non-biometric record."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(
        Student, null=True, on_delete=models.SET_NULL, related_name="erasures"
    )
    school = models.ForeignKey(School, on_delete=models.PROTECT, related_name="+")
    subject_id = models.UUIDField(db_index=True)
    trigger = models.CharField(max_length=30)
    status = models.CharField(
        max_length=20, choices=ErasureStatus.choices, default=ErasureStatus.PENDING
    )
    requested_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    receipt = models.JSONField(null=True, blank=True)
    receipt_signature = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            # At most one open erasure per child: a second trigger joins the open one.
            models.UniqueConstraint(
                fields=["student"],
                condition=models.Q(status__in=["pending", "running", "needs_attention"]),
                name="one_open_erasure_per_child",
            )
        ]


class ErasureStep(models.Model):
    """One system an erasure must reach. Its own row says everything about it: attempts and
    when the next may run (backing off), the worker's lease while one runs it, since when it
    has been failing and whether the DPO was told, the last error (naming no subject), and
    what its verification measured (`proof`) — or who confirmed it by hand, and on what."""

    request = models.ForeignKey(ErasureRequest, on_delete=models.CASCADE, related_name="steps")
    system = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)  # database / media / cache / exports / http / key
    holder = models.ForeignKey(Holder, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(
        max_length=20, choices=ErasureStatus.choices, default=ErasureStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    items_erased = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    proof = models.JSONField(default=dict, blank=True)
    confirmed_by = models.CharField(max_length=64, blank=True)  # "staff:<id>", never a name
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_evidence = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class MatchIndexVersion(models.Model):
    """Changed whenever a school's set of templates changes; match caches reload when it moves.

    A random token, not a counter: a restored backup or a rolled-back transaction can never
    bring back a value a process has cached for a different set of templates.
    """

    school = models.OneToOneField(School, on_delete=models.CASCADE, primary_key=True)
    version = models.CharField(max_length=32)


class MatchIndexChange(models.Model):
    """Which children's templates changed, in the order the changes committed (each is written
    while its transaction holds the school's MatchIndexVersion row, so a later id never commits
    before an earlier one). A process brings its index up to date by the changes after the last
    it applied: those children's columns dropped and their templates as they are now read,
    instead of reading every template id of the school. `student_id` empty: a change the
    writer did not itemise; readers then compare every template id. Rows are pruned after
    `matching.CHANGES_KEPT` (an index older than that compares every id). No numbers here:
    ids only, as on the templates themselves."""

    id = models.BigAutoField(primary_key=True)
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+")
    student_id = models.UUIDField(null=True, blank=True)
    version = models.CharField(max_length=32)  # the school's MatchIndexVersion it wrote
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["school", "id"]), models.Index(fields=["at"])]


class RetentionRun(models.Model):
    """One run of one retention job: what it did, for the audit trail and admin."""

    job = models.CharField(max_length=40)
    as_of = models.DateTimeField()
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} as of {self.as_of:%Y-%m-%d %H:%M}"


class ConsentReminder(models.Model):
    """A guardian was reminded that a grant expires soon (sent once per grant)."""

    decision_id = models.BigIntegerField(unique=True)
    sent_at = models.DateTimeField()
