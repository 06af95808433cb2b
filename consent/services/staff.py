"""Writes for staff access: which school a staff account may see in admin, and in what role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from ..actors import Actor
from ..audit import audit_record
from ..changes import audited_delete, audited_update, given
from ..models import School, StaffMembership

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def staff_membership_create(
    *, user: User, school: School, role: str = StaffMembership.Role.ADMIN, actor: Actor
) -> StaffMembership:
    with transaction.atomic():
        membership = StaffMembership.objects.create(user=user, school=school, role=role)
        audit_record(
            "staff.membership_added",
            actor=actor,
            school_id=school.pk,
            data={"id": membership.pk, "user": user.pk, "role": role},
        )
    return membership


def staff_membership_update(
    *,
    membership: StaffMembership,
    actor: Actor,
    user: User | None = None,
    school: School | None = None,
    role: str | None = None,
) -> StaffMembership:
    """Change a membership; audited under the school it was for (and so seen by that school)."""
    with transaction.atomic():
        audited_update(
            instance=membership,
            values=given(user=user, school=school, role=role),
            action="staff.membership_changed",
            actor=actor,
            school_id=membership.school_id,
        )
    return membership


def staff_membership_delete(*, membership: StaffMembership, actor: Actor) -> None:
    audited_delete(
        membership,
        action="staff.membership_removed",
        actor=actor,
        school_id=membership.school_id,
        data={"user": membership.user_id, "role": membership.role},
    )
