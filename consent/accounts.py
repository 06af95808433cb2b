"""Guardian accounts and staff accounts never share or alter one another.

A guardian signs in by a link sent to their address, so their Django user only carries a
session: it is named `guardian:<random hex>` (a colon, which no form accepts in a username, so
no staff account can ever be named like one), it has no usable password and it is never staff.
Creating a guardian always makes a new one; it never looks an account up by address.

A child who signs in to their own page (`portal.child_auth`) has an account of a third kind,
named `child:<random hex>`: no usable password, never staff, never a guardian's, never a
member of a school's staff. It carries the child's session and bearer tokens, nothing else.

Whatever code saves, three receivers (connected in `ConsentConfig.ready`) hold the wall: a
guardian's account cannot be saved as staff or superuser, and a guardian or a staff membership
cannot be saved on the wrong kind of account.
"""

from __future__ import annotations

import uuid

from .models import Guardian, StaffMembership

GUARDIAN_USERNAME_PREFIX = "guardian:"
CHILD_USERNAME_PREFIX = "child:"
GUARDIAN_NEVER_STAFF = "A guardian's account can never be a staff account."
STAFF_NEVER_GUARDIAN = "A staff account can never be a guardian's account."
CHILD_ONLY_CHILD = "A child's account is only ever the child's: never staff, never a guardian's."


class AccountsKeptApart(ValueError):
    """A write would have joined a guardian's account and a staff account."""


def guardian_username() -> str:
    return GUARDIAN_USERNAME_PREFIX + uuid.uuid4().hex


def child_username() -> str:
    return CHILD_USERNAME_PREFIX + uuid.uuid4().hex


def is_child_account(user) -> bool:
    return bool(user.username) and user.username.startswith(CHILD_USERNAME_PREFIX)


def is_guardian_account(user) -> bool:
    return user.username.startswith(GUARDIAN_USERNAME_PREFIX) or (
        user.pk is not None and Guardian.objects.filter(user_id=user.pk).exists()
    )


def is_staff_account(user) -> bool:
    """Staff, superuser, able to sign in with a password, or a member of a school's staff."""
    return (
        user.is_staff
        or user.is_superuser
        or user.has_usable_password()
        or (user.pk is not None and StaffMembership.objects.filter(user_id=user.pk).exists())
    )


def user_pre_save(sender, instance, raw=False, **kwargs) -> None:
    if raw:  # loaddata: rows as they were dumped
        return
    if (instance.is_staff or instance.is_superuser) and is_guardian_account(instance):
        raise AccountsKeptApart(GUARDIAN_NEVER_STAFF)
    if is_child_account(instance) and (
        instance.is_staff or instance.is_superuser or instance.has_usable_password()
    ):
        raise AccountsKeptApart(CHILD_ONLY_CHILD)


def guardian_pre_save(sender, instance: Guardian, raw=False, **kwargs) -> None:
    if raw:
        return
    user = instance.user
    if not user.username.startswith(GUARDIAN_USERNAME_PREFIX) or is_staff_account(user):
        raise AccountsKeptApart(STAFF_NEVER_GUARDIAN)


def membership_pre_save(sender, instance: StaffMembership, raw=False, **kwargs) -> None:
    if not raw and is_guardian_account(instance.user):
        raise AccountsKeptApart(GUARDIAN_NEVER_STAFF)
    if not raw and is_child_account(instance.user):
        raise AccountsKeptApart(CHILD_ONLY_CHILD)
