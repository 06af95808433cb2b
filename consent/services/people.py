"""Writes for children, guardians and the links between them (the roster; a leaver is in
`decisions`, with the other writes that end purposes).

Each service owns its transaction, writes its audit row inside it and, when it changes what
the consent rule reads (a link, parental responsibility), refreshes the children's stored
consent statuses in the same transaction.
"""

from __future__ import annotations

from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from ..accounts import guardian_username
from ..actors import Actor
from ..audit import AuditEntry, audit_record, audit_record_many
from ..changes import audited_delete, audited_update, given
from ..errors import ConsentError
from ..models import Guardian, Guardianship, School, Student
from ..status import consent_status_refresh
from .notices import notice_delivery_open

GUARDIAN_EXISTS = "A guardian with this email address exists already."
GUARDIAN_EMAIL_IS_THEIRS = (
    "A guardian's email address is theirs: only they can change it, from their own page."
)


def student_create(
    *,
    school: School,
    external_id: str,
    name: str,
    date_of_birth: date | None = None,
    class_name: str = "",
    actor: Actor,
    refresh_status: bool = True,
) -> Student:
    """Put a child on the roll. `refresh_status=False`: the caller stores the consent statuses
    itself, for many children at once, in the same transaction (the roster import, per chunk)."""
    with transaction.atomic():
        student = Student.objects.create(
            school=school,
            external_id=external_id,
            name=name,
            date_of_birth=date_of_birth,
            class_name=class_name,
        )
        audit_record(
            "roster.student_created",
            actor=actor,
            school_id=school.pk,
            subject=student.subject_id,
        )
        if refresh_status:
            consent_status_refresh([student.pk])
    return student


def student_update(
    *,
    student: Student,
    external_id: str,
    name: str,
    date_of_birth: date | None,
    class_name: str,
    actor: Actor,
) -> Student:
    """Correct a child's roster details (every field, as the roster row or the admin form has
    them). The date of birth is read by the consent rule (from the 18th birthday only the
    student's own grant counts), so a new one stores the child's statuses again. The audit row
    names the fields that changed but not the values: a child's name and birthday stay out."""
    with transaction.atomic():
        changes = audited_update(
            instance=student,
            values={
                "external_id": external_id,
                "name": name,
                "date_of_birth": date_of_birth,
                "class_name": class_name,
            },
            action="roster.student_changed",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            hidden={"external_id", "name", "date_of_birth"},
        )
        if "date_of_birth" in changes:
            consent_status_refresh([student.pk])
    return student


def _guardian_new(*, email: str, name: str, language: str) -> Guardian:
    """A guardian with an account of their own: never an existing one (`consent.accounts`)."""
    user = get_user_model().objects.create(
        username=guardian_username(), password=make_password(None)
    )
    return Guardian.objects.create(user=user, email=email, name=name, language=language)


def guardian_get_or_create(
    *, email: str, name: str, language: str = "", known_new: bool = False
) -> Guardian:
    """The guardian with this address as they are, or a new one (with a new account that cannot
    sign in by password). An existing guardian is never changed: their name, address, language
    and account stay theirs, whichever school links them. An account that happens to be named
    like the address (a staff member's) is never looked at. `known_new`: the caller knows there
    is no guardian with it (the roster import checks a whole file at once).

    Not audited: the roster and the API audit the link that gives a guardian a child
    (`guardianship_link`); a guardian with no child can see nothing."""
    email = email.strip().lower()
    if not known_new and (guardian := Guardian.objects.filter(email=email).first()):
        return guardian
    with transaction.atomic():
        return _guardian_new(email=email, name=name, language=language)


def guardian_create(*, email: str, name: str, language: str = "", actor: Actor) -> Guardian:
    """A new guardian entered by staff (the roster and the staff API use
    `guardian_get_or_create` and audit the link instead). Refused if the address is taken."""
    with transaction.atomic():
        if Guardian.objects.filter(email=email.strip().lower()).exists():
            raise ConsentError("guardian_exists", GUARDIAN_EXISTS)
        guardian = guardian_get_or_create(email=email, name=name, language=language)
        audit_record("roster.guardian_created", actor=actor, data={"guardian": guardian.pk})
    return guardian


def guardian_link_by_email(
    *,
    email: str,
    name: str,
    language: str = "",
    student: Student,
    parental_responsibility: bool = True,
    relationship: str = "",
    actor: Actor,
) -> tuple[Guardian, bool]:
    """Link the guardian with this address to a child, making the guardian if there is none
    (staff in admin); the link queues the school's written notice to them. Returns (guardian,
    created).

    A guardian who exists already (say, with a child at another school) is linked as they are:
    `name` and `language` are used only for a new one, and nothing of theirs changes. Both the
    creation and the link are audited under the child's school."""
    with transaction.atomic():
        address = email.strip().lower()
        guardian = Guardian.objects.filter(email=address).first()
        created = guardian is None
        if guardian is None:
            guardian = _guardian_new(email=address, name=name, language=language)
            audit_record(
                "roster.guardian_created",
                actor=actor,
                school_id=student.school_id,
                data={"guardian": guardian.pk},
            )
        guardianship_link(
            guardian=guardian,
            student=student,
            parental_responsibility=parental_responsibility,
            relationship=relationship,
            actor=actor,
        )
    return guardian, created


def _may_change_email(actor: Actor, guardian: Guardian) -> bool:
    # A guardian's address is where their sign-in links go: only they change it (confirmed by
    # a link to the new address), or the job that carries out their confirmed change.
    return (actor.kind == "guardian" and actor.id == str(guardian.pk)) or actor.kind == "system"


def guardian_update(
    *,
    guardian: Guardian,
    actor: Actor,
    name: str | None = None,
    email: str | None = None,
    language: str | None = None,
) -> Guardian:
    """Correct a guardian's name or language, or (the guardian themselves) their address; none
    is a consent-rule input. No school's staff and no API key may change an address: whoever
    controls it signs in as the guardian and sees every child of theirs, at every school. The
    audit row names a changed name or address without its value."""
    address = email.strip().lower() if email else None
    if address is not None and address != guardian.email:
        if not _may_change_email(actor, guardian):
            raise ConsentError("email_not_yours", GUARDIAN_EMAIL_IS_THEIRS)
        if Guardian.objects.filter(email=address).exclude(pk=guardian.pk).exists():
            raise ConsentError("guardian_exists", GUARDIAN_EXISTS)
    values = given(name=name, email=address, language=language)
    with transaction.atomic():
        audited_update(
            instance=guardian,
            values=values,
            action="roster.guardian_changed",
            actor=actor,
            school_id=None,
            hidden={"name", "email"},
        )
    return guardian


def guardian_delete(*, guardian: Guardian, actor: Actor) -> None:
    """Delete a guardian and their links (their decisions protect them: a guardian who decided
    cannot be deleted). Each child they were linked to is audited and has its statuses stored
    again, since a parent fewer can start or stop a purpose."""
    with transaction.atomic():
        links = list(Guardianship.objects.filter(guardian=guardian).select_related("student"))
        audit_record_many(
            [
                AuditEntry(
                    "roster.guardian_deleted",
                    actor,
                    school_id=link.student.school_id,
                    subject=str(link.student.subject_id),
                    data={"guardian": guardian.pk},
                )
                for link in links
            ]
            or [AuditEntry("roster.guardian_deleted", actor, data={"guardian": guardian.pk})]
        )
        guardian.delete()
        consent_status_refresh([link.student_id for link in links])


def guardianship_link(
    *,
    guardian: Guardian,
    student: Student,
    parental_responsibility: bool = True,
    relationship: str = "",
    actor: Actor,
    known_new: bool = False,
    refresh_status: bool = True,
    queue_notice: bool = True,
) -> Guardianship:
    """Link a guardian to a child and queue the school's written notice to them (PoFA
    s.26(2); `consent.services.notices`). The link alone notifies nobody: the guardian counts
    as notified once the mail backend accepted the notice, or staff record a letter. A link
    that exists already gets a notice only if none reached the guardian and none is on its way.

    `known_new`: the caller knows the link does not exist (nothing is looked up).
    `refresh_status=False`: the caller refreshes the consent statuses itself, for many children
    at once, in the same transaction (the roster import, per chunk).
    `queue_notice=False`: the notice's delivery row is written but its task is not queued; the
    caller queues many at once (`notice_deliveries_enqueue`; the roster, per chunk)."""
    with transaction.atomic():
        if known_new:
            link, created = (
                Guardianship.objects.create(
                    guardian=guardian,
                    student=student,
                    parental_responsibility=parental_responsibility,
                    relationship=relationship,
                ),
                True,
            )
        else:
            link, created = Guardianship.objects.get_or_create(
                guardian=guardian,
                student=student,
                defaults={
                    "parental_responsibility": parental_responsibility,
                    "relationship": relationship,
                },
            )
        if not created and link.parental_responsibility != parental_responsibility:
            link.parental_responsibility = parental_responsibility
            link.save(update_fields=["parental_responsibility"])
        delivery = notice_delivery_open(guardianship=link, known_new=created, enqueue=queue_notice)
        audit_record(
            "roster.guardian_linked",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={
                "guardian": guardian.pk,
                "parental_responsibility": parental_responsibility,
                "notice_delivery": delivery.pk if delivery else None,
            },
        )
        if refresh_status:
            consent_status_refresh([student.pk])
    return link


def guardianship_update(
    *,
    guardianship: Guardianship,
    actor: Actor,
    guardian: Guardian | None = None,
    parental_responsibility: bool | None = None,
    relationship: str | None = None,
) -> Guardianship:
    """Change a link: who the guardian is, whether they hold parental responsibility (a rule
    input: only they decide, and all of them must have been notified), the relationship."""
    values = given(
        guardian=guardian,
        parental_responsibility=parental_responsibility,
        relationship=relationship,
    )
    student = guardianship.student
    with transaction.atomic():
        if audited_update(
            instance=guardianship,
            values=values,
            action="roster.guardianship_changed",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
        ):
            consent_status_refresh([student.pk])
    return guardianship


def guardianship_unlink(*, guardianship: Guardianship, actor: Actor) -> None:
    """Remove a guardian from a child (with the link's notifications and their exceptions)."""
    student = guardianship.student
    with transaction.atomic():
        audited_delete(
            guardianship,
            action="roster.guardian_unlinked",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"guardian": guardianship.guardian_id},
        )
        consent_status_refresh([student.pk])
