"""Field-by-field updates and deletes for services, each with the audit row that says what
changed.

HackSoft's `model_update`: a service passes the fields it was given; only those that differ are
saved, and the audit row carries each one's value before and after (or only its name, for
personal data and secrets, which never enter the audit trail).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from django.db import models, transaction

from .actors import Actor
from .audit import audit_record

Changes = dict[str, tuple[Any, Any]]
M = TypeVar("M", bound=models.Model)


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments a caller passed (None means "leave it as it is")."""
    return {name: value for name, value in values.items() if value is not None}


def model_update(instance: models.Model, values: Mapping[str, Any]) -> Changes:
    """Set each field whose value differs and save only those. Returns {field: (before, after)}."""
    changes: Changes = {}
    for name, value in values.items():
        before = getattr(instance, name)
        if before != value:
            setattr(instance, name, value)
            changes[name] = (before, value)
    if changes:
        instance.save(update_fields=list(changes))
    return changes


def _plain(value: Any) -> Any:
    # A related row by its id: its __str__ may carry a name or an email.
    return value.pk if isinstance(value, models.Model) else value


def audited_update(
    *,
    instance: models.Model,
    values: Mapping[str, Any],
    action: str,
    actor: Actor,
    school_id: int | None,
    subject: object = "",
    hidden: Collection[str] = (),
) -> Changes:
    """`model_update` plus its audit row (none when nothing changed); `hidden` fields are
    named but their values are not recorded. Call it inside the service's transaction."""
    changes = model_update(instance, values)
    if changes:
        audit_record(
            action,
            actor=actor,
            school_id=school_id,
            subject=str(subject or ""),
            data={
                "id": _plain(instance.pk),
                "changes": {
                    name: "changed" if name in hidden else [_plain(before), _plain(after)]
                    for name, (before, after) in changes.items()
                },
            },
        )
    return changes


def with_values(instance: M, values: Mapping[str, Any]) -> M:
    """A copy of `instance` with `values` set and nothing saved, to validate a change before
    making it (Django copies the row's state with it, so the original is left as it was)."""
    candidate = copy.copy(instance)
    for name, value in values.items():
        setattr(candidate, name, value)
    return candidate


def audited_delete(
    instance: models.Model,
    *,
    action: str,
    actor: Actor,
    school_id: int | None,
    subject: object = "",
    data: Mapping[str, Any] | None = None,
) -> None:
    """Delete a row (and what cascades with it) with its audit row, in one transaction; the
    audit row has its id and `data`."""
    with transaction.atomic():
        audit_record(
            action,
            actor=actor,
            school_id=school_id,
            subject=str(subject or ""),
            data={"id": _plain(instance.pk), **(data or {})},
        )
        instance.delete()
