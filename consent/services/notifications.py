"""Writes for the school's written notification of a guardian (PoFA s.26(2)) and for the
recorded reasons a guardian could not be notified (s.27(1)).

Both are consent-rule inputs: no purpose starts for a child until every guardian with parental
responsibility was notified or excused. Every write stores the child's statuses again (both
children's, when a row moves from one link to another).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction

from ..actors import Actor
from ..audit import audit_record
from ..changes import audited_delete, audited_update, given
from ..models import (
    Guardianship,
    NoticeDelivery,
    Notification,
    NotificationException,
    NotificationMethod,
)
from ..status import consent_status_refresh

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# A notification or an exception: the same writes, audited under their own names.
Row = TypeVar("Row", Notification, NotificationException)


def _row_create(
    model: type[Row],
    *,
    action: str,
    actor: Actor,
    audit: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Row:
    with transaction.atomic():
        row = model.objects.create(**fields)
        student = row.guardianship.student
        audit_record(
            action,
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"id": row.pk, "guardian": row.guardianship.guardian_id, **(audit or {})},
        )
        consent_status_refresh([student.pk])
    return row


def _row_update(row: Row, *, action: str, actor: Actor, values: Mapping[str, Any]) -> Row:
    before = row.guardianship.student
    with transaction.atomic():
        audited_update(
            instance=row,
            values=values,
            action=action,
            actor=actor,
            school_id=before.school_id,
            subject=before.subject_id,
            hidden={"note"},  # may say why a parent cannot be told (welfare, a court order)
        )
        consent_status_refresh({before.pk, row.guardianship.student_id})
    return row


def _row_delete(row: Row, *, action: str, actor: Actor) -> None:
    student = row.guardianship.student
    with transaction.atomic():
        audited_delete(
            row,
            action=action,
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"guardian": row.guardianship.guardian_id},
        )
        consent_status_refresh([student.pk])


def notification_record(
    *,
    guardianship: Guardianship,
    sent_at: datetime,
    method: str = NotificationMethod.LETTER,
    note: str = "",
    recorded_by: AbstractBaseUser | None = None,
    actor: Actor,
) -> Notification:
    """The school's notice reached this guardian (at `sent_at`, which may be in the future: the
    rule counts it from then): a paper letter staff handed over or posted (`recorded_by`), or
    an email the mail backend accepted (written only by `consent.services.notices`)."""
    return _row_create(
        Notification,
        action="consent.notification_recorded",
        actor=actor,
        audit={"method": method},
        guardianship=guardianship,
        sent_at=sent_at,
        method=method,
        note=note,
        recorded_by=recorded_by,
    )


def notification_update(
    *,
    notification: Notification,
    actor: Actor,
    guardianship: Guardianship | None = None,
    sent_at: datetime | None = None,
    method: str | None = None,
    note: str | None = None,
    recorded_by: AbstractBaseUser | None = None,
) -> Notification:
    values = given(
        guardianship=guardianship,
        sent_at=sent_at,
        method=method,
        note=note,
        recorded_by=recorded_by,
    )
    return _row_update(
        notification, action="consent.notification_changed", actor=actor, values=values
    )


def notification_delete(*, notification: Notification, actor: Actor) -> None:
    _row_delete(notification, action="consent.notification_deleted", actor=actor)


def notification_exception_record(
    *,
    guardianship: Guardianship,
    reason: str,
    note: str = "",
    recorded_by: AbstractBaseUser | None = None,
    actor: Actor,
) -> NotificationException:
    """Why this guardian could not be notified; it counts as notified for the rule. A notice
    still queued for them is not sent (a parent who must not be contacted is not)."""
    with transaction.atomic():
        NoticeDelivery.objects.filter(
            guardianship=guardianship, status=NoticeDelivery.Status.PENDING
        ).update(status=NoticeDelivery.Status.EXCUSED, next_attempt_at=None)
        return _row_create(
            NotificationException,
            action="consent.notification_exception_recorded",
            actor=actor,
            guardianship=guardianship,
            reason=reason,
            note=note,
            recorded_by=recorded_by,
        )


def notification_exception_update(
    *,
    exception: NotificationException,
    actor: Actor,
    guardianship: Guardianship | None = None,
    reason: str | None = None,
    note: str | None = None,
    recorded_by: AbstractBaseUser | None = None,
) -> NotificationException:
    values = given(guardianship=guardianship, reason=reason, note=note, recorded_by=recorded_by)
    return _row_update(
        exception, action="consent.notification_exception_changed", actor=actor, values=values
    )


def notification_exception_delete(*, exception: NotificationException, actor: Actor) -> None:
    _row_delete(exception, action="consent.notification_exception_deleted", actor=actor)
