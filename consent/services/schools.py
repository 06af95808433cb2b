"""Writes for a school's published policy, its purposes and their notices.

A purpose is enabled only with a notice, a non-biometric alternative and a DPIA reference
(`Purpose.enablement_problems`), and only once the school's DPO signed that DPIA off
(`dpia_sign_off`; `Purpose.enabling_problems`): `purpose_update` refuses otherwise, whoever
calls it. Purposes,
notices and the school's consent validity are consent-rule inputs for every child of the school,
so those writes store every child's statuses again, in their own transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..actors import Actor
from ..audit import audit_record
from ..changes import audited_delete, audited_update, given, with_values
from ..errors import ConsentError
from ..models import ConsentStatus, DpiaSignOff, Purpose, School, StaffMembership, Student
from ..signals import purposes_changed
from ..status import consent_status_refresh_due, consent_status_refresh_school

if TYPE_CHECKING:
    from django.contrib.auth.models import User

NOT_DPO = "Only a data protection officer of the purpose's school can sign off its DPIA."
NO_DPIA_DOCUMENT = "Name the DPIA document (its reference) before it can be signed off."

# Every field staff may set on a school: who it is, its DPO, its retention policy, its face
# matching policy and its competence age (all of it published on the school's transparency
# page).
SCHOOL_FIELDS = (
    "name",
    "slug",
    "address",
    "website",
    "jurisdiction",
    "dpo_name",
    "dpo_email",
    "leaver_window_days",
    "reconsent_window_days",
    "event_window_days",
    "template_max_age_days",
    "consent_validity_days",
    "export_expiry_hours",
    "face_tolerance",
    "face_match_margin",
    "competence_age",
    "language",
    "languages",
)
# Children announced at a time when a purpose is disabled for a whole school.
ANNOUNCE_CHUNK = 500
# What `purpose_statuses` reads of a purpose (besides its notices).
PURPOSE_RULE_FIELDS = {"enabled", "alternative", "dpia_reference"}


def _school_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(SCHOOL_FIELDS)
    if unknown:
        raise TypeError(f"not a school policy field: {', '.join(sorted(unknown))}")
    return fields


def school_create(*, slug: str, name: str, actor: Actor, **fields: Any) -> School:
    """A new school; `fields` are any of SCHOOL_FIELDS (the model's defaults otherwise). The
    legal bounds of the retention policy are checked (ValidationError)."""
    school = School(slug=slug, name=name, **_school_fields(fields))
    school.full_clean()
    with transaction.atomic():
        school.save()
        audit_record("school.created", actor=actor, school_id=school.pk, data={"slug": slug})
    return school


def school_policy_update(*, school: School, actor: Actor, **fields: Any) -> School:
    """Change what the school publishes: its details, DPO contact, retention windows, consent
    validity, export expiry, competence age, and face matching tolerance and margin
    (identification reads them at its next request). Audited with each value before and
    after. The legal and model bounds are checked first (ValidationError, nothing changed). A
    new consent validity moves every child's consent expiry, so their statuses are stored
    again."""
    values = _school_fields(fields)
    with_values(school, values).full_clean()
    with transaction.atomic():
        changes = audited_update(
            instance=school,
            values=values,
            action="school.policy_changed",
            actor=actor,
            school_id=school.pk,
        )
        if "consent_validity_days" in changes:
            consent_status_refresh_school(school)
    return school


def school_delete(*, school: School, actor: Actor) -> None:
    """Delete a school that has no children (they protect it) with its purposes and settings."""
    audited_delete(
        school,
        action="school.deleted",
        actor=actor,
        school_id=school.pk,
        data={"slug": school.slug},
    )


def purpose_create(
    *,
    school: School,
    code: str,
    name: str,
    description: str = "",
    alternative: str = "",
    dpia_reference: str = "",
    actor: Actor,
) -> Purpose:
    """A new purpose, disabled: it has no notice yet (publish one, then `purpose_update`)."""
    with transaction.atomic():
        purpose = Purpose.objects.create(
            school=school,
            language=school.language,
            code=code,
            name=name,
            description=description,
            alternative=alternative,
            dpia_reference=dpia_reference,
        )
        audit_record(
            "consent.purpose_created", actor=actor, school_id=school.pk, data={"purpose": code}
        )
        # The rule reports every purpose of the school, a disabled one too.
        consent_status_refresh_school(school)
    return purpose


def purpose_update(
    *,
    purpose: Purpose,
    actor: Actor,
    enabled: bool | None = None,
    code: str | None = None,
    name: str | None = None,
    description: str | None = None,
    alternative: str | None = None,
    dpia_reference: str | None = None,
) -> Purpose:
    """Change a purpose (None leaves a field as it is).

    1. Refuse (ConsentError `purpose_not_ready`, nothing changed) if the purpose would be
       enabled without a notice, an alternative and a DPIA reference, or be enabled (or
       name another DPIA document while enabled) without the DPO's sign-off of that DPIA.
    2. Save the fields that differ, with an audit row (`consent.purpose_enabled` / `_disabled`
       when that flips, `consent.purpose_changed` otherwise).
    3. If the rule reads what changed, store every child's statuses again.
    """
    values = given(
        enabled=enabled,
        code=code,
        name=name,
        description=description,
        alternative=alternative,
        dpia_reference=dpia_reference,
    )
    after = with_values(purpose, values)
    if problems := after.enabling_problems(before=purpose):
        raise ConsentError("purpose_not_ready", " ".join(problems))
    flip = {True: "consent.purpose_enabled", False: "consent.purpose_disabled"}
    action = flip[after.enabled] if after.enabled != purpose.enabled else "consent.purpose_changed"
    with transaction.atomic():
        ending = _active_for(purpose) if purpose.enabled and not after.enabled else []
        changes = audited_update(
            instance=purpose,
            values=values,
            action=action,
            actor=actor,
            school_id=purpose.school_id,
        )
        if PURPOSE_RULE_FIELDS.intersection(changes):
            consent_status_refresh_school(purpose.school_id)
        _purpose_ended_announce(purpose, ending)
    return purpose


def _active_for(purpose: Purpose) -> list[Student]:
    """The children of the purpose's school for whom it is active now, from the stored
    statuses (every write to a rule input stores them; inputs dated later are re-run first).
    Running the rule for a whole school here would cost seconds per thousand children; a child
    the table missed (drift) is still caught by the hourly `consents` retention job."""
    now = timezone.now()
    students = Student.objects.filter(school_id=purpose.school_id)
    consent_status_refresh_due(students, at=now)
    live = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    return list(
        students.filter(
            Exists(
                ConsentStatus.objects.filter(
                    live, student=OuterRef("pk"), purpose=purpose, active=True
                )
            )
        ).order_by("pk")
    )


def _purpose_ended_announce(purpose: Purpose, students: list[Student]) -> None:
    """Tell the apps that hold data that the purpose ended for these children (inside the
    disabling transaction, so what they start commits with it), a chunk at a time."""
    at = timezone.now()
    for start in range(0, len(students), ANNOUNCE_CHUNK):
        purposes_changed.send(
            sender=Purpose,
            students=students[start : start + ANNOUNCE_CHUNK],
            ended={purpose.code},
            at=at,
        )


def purpose_disable(*, purpose: Purpose, actor: Actor) -> Purpose:
    """Stop using biometrics for this purpose: it stops at once for every child, and
    `purposes_changed` announces it for each child it was active for (their recognition
    events of it go at once; everything, for a child left with no purpose)."""
    return purpose_update(purpose=purpose, enabled=False, actor=actor)


def purpose_delete(*, purpose: Purpose, actor: Actor) -> None:
    """Delete a purpose nobody decided about (decisions and events protect it); its stored
    statuses go with it."""
    audited_delete(
        purpose,
        action="consent.purpose_deleted",
        actor=actor,
        school_id=purpose.school_id,
        data={"purpose": purpose.code},
    )


def dpia_sign_off(
    *,
    purpose: Purpose,
    signed_by: User,
    document_reference: str = "",
    note: str = "",
    actor: Actor,
    at: datetime | None = None,
) -> DpiaSignOff:
    """The school's DPO signs off the DPIA of a purpose (UK GDPR Art 35(2): the DPO is
    consulted before a deployment). A purpose is enabled only while it names a signed-off DPIA.

    1. Refuse (ConsentError `not_dpo`) unless `signed_by` is a DPO of the purpose's school
       (a membership with the DPO role; being a superuser is not enough).
    2. Refuse (`no_dpia`) without a document reference (`document_reference`, else the one the
       purpose names).
    3. Record who, when and which document, with its audit row; a document other than the
       one the purpose names becomes the purpose's reference (a rule input: every child's
       statuses are stored again).
    """
    is_dpo = StaffMembership.objects.filter(
        user_id=signed_by.pk, school_id=purpose.school_id, role=StaffMembership.Role.DPO
    ).exists()
    if not (is_dpo and signed_by.is_active):
        raise ConsentError("not_dpo", NOT_DPO)
    reference = (document_reference or purpose.dpia_reference).strip()
    if not reference:
        raise ConsentError("no_dpia", NO_DPIA_DOCUMENT)
    with transaction.atomic():
        sign_off = DpiaSignOff.objects.create(
            purpose=purpose,
            document_reference=reference,
            signed_by=signed_by,
            signed_at=at or timezone.now(),
            note=note,
        )
        audit_record(
            "consent.dpia_signed_off",
            actor=actor,
            school_id=purpose.school_id,
            data={
                "id": sign_off.pk,
                "purpose": purpose.code,
                "document": reference,
                "signed_by": signed_by.pk,
            },
        )
        if audited_update(
            instance=purpose,
            values={"dpia_reference": reference},
            action="consent.purpose_changed",
            actor=actor,
            school_id=purpose.school_id,
        ):
            consent_status_refresh_school(purpose.school_id)
    return sign_off
