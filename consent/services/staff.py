"""Writes for staff access: staff accounts, which school a staff account may see in admin, and
in what role. A staff account is never a guardian's, nor the other way round
(`consent.accounts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from ..accounts import GUARDIAN_NEVER_STAFF, is_guardian_account
from ..actors import Actor
from ..audit import audit_record
from ..changes import audited_delete, audited_update, given
from ..errors import ConsentError
from ..models import Guardian, School, StaffMembership

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Role = StaffMembership.Role

#: The group that gives each role its permissions (portal.staff_groups keeps them in step).
ROLE_GROUPS: dict[str, str] = {
    Role.ADMIN: "School admin",
    Role.ENROLMENT: "Enrolment operator",
    Role.DPO: "DPO",
}
EMAIL_IS_A_GUARDIANS = (
    "This address belongs to a guardian; a staff account needs an address of its own."
)


def staff_member_add(*, email: str, school: School, role: str, actor: Actor) -> tuple[User, bool]:
    """Give a person staff access to a school in a role. Returns (account, created).

    1. Refuse an address that is a guardian's, and an account that is a guardian's.
    2. Find the staff account named by the address, or make it: staff, no usable password
       until its owner sets one (`staff_set_password_token`).
    3. Make (or change) its membership of the school; its role groups follow its memberships.
    Audited under the school, without the address."""
    address = email.strip().lower()
    if role not in ROLE_GROUPS:
        raise ConsentError("unknown_role", f"The role must be one of {', '.join(ROLE_GROUPS)}.")
    User = get_user_model()
    with transaction.atomic():
        if Guardian.objects.filter(email=address).exists():
            raise ConsentError("email_is_a_guardians", EMAIL_IS_A_GUARDIANS)
        user = User.objects.filter(username__iexact=address).first()
        created = user is None
        if user is None:
            user = User.objects.create(
                username=address, email=address, is_staff=True, password=make_password(None)
            )
        elif is_guardian_account(user):
            raise ConsentError("guardian_account", GUARDIAN_NEVER_STAFF)
        elif not (user.is_staff and user.is_active):
            user.is_staff = user.is_active = True
            user.save(update_fields=["is_staff", "is_active"])
        membership = StaffMembership.objects.filter(user=user, school=school).first()
        if membership is None:
            staff_membership_create(user=user, school=school, role=role, actor=actor)
        else:
            staff_membership_update(membership=membership, role=role, actor=actor)
        _role_groups_sync(user)
        audit_record(
            "staff.member_added",
            actor=actor,
            school_id=school.pk,
            data={"user": user.pk, "role": role, "account_created": created},
        )
    return user, created


def _role_groups_sync(user: User) -> None:
    """The account's role groups are those of its memberships (a role changed at its only
    school leaves the old role's group); groups that are not roles' are left alone."""
    roles = set(StaffMembership.objects.filter(user=user).values_list("role", flat=True))
    wanted = {ROLE_GROUPS[r] for r in roles if r in ROLE_GROUPS}
    user.groups.remove(*Group.objects.filter(name__in=set(ROLE_GROUPS.values()) - wanted))
    user.groups.add(*Group.objects.filter(name__in=wanted))


def staff_set_password_token(*, user: User, actor: Actor) -> tuple[str, str]:
    """A one-time token for a staff account to set its password: (uid, token) for the admin's
    set-password page. It stops working once a password is set (Django's token covers the
    password hash and the last sign-in) and after PASSWORD_RESET_TIMEOUT (72 hours)."""
    if is_guardian_account(user) or not user.is_staff:
        raise ConsentError("not_staff", GUARDIAN_NEVER_STAFF)
    with transaction.atomic():
        audit_record("staff.password_link_issued", actor=actor, data={"user": user.pk})
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


def staff_membership_create(
    *, user: User, school: School, role: str = StaffMembership.Role.ADMIN, actor: Actor
) -> StaffMembership:
    """Refused for a guardian's account (`consent.accounts`)."""
    if is_guardian_account(user):
        raise ConsentError("guardian_account", GUARDIAN_NEVER_STAFF)
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
    if user is not None and is_guardian_account(user):
        raise ConsentError("guardian_account", GUARDIAN_NEVER_STAFF)
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
