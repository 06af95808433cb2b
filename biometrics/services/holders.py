"""The systems that hold template copies (holders): registered, changed and removed by staff,
from admin, with their audit rows. A holder's secret is stored sealed and never audited."""

from __future__ import annotations

from django.db import transaction

from consent.actors import Actor
from consent.audit import audit_record
from consent.changes import audited_delete, audited_update, given
from consent.models import School

from ..holder_guard import holder_url_problem
from ..models import Holder


def _holder_url_checked(base_url: str) -> str:
    if problem := holder_url_problem(base_url):
        raise ValueError(problem)
    return base_url


def holder_create(
    *,
    school: School,
    name: str,
    base_url: str,
    secret: str,
    enabled: bool = True,
    receives_templates: bool = True,
    labels: dict | None = None,
    actor: Actor,
) -> Holder:
    """Register a system that holds copies (speaks the holder protocol). Its address must be
    one the portal may reach (`holder_guard`; ValueError otherwise); its secret is stored
    sealed, and audited only as set. Templates made from now on are copied to it when it
    receives templates."""
    with transaction.atomic():
        holder = Holder(
            school=school,
            name=name,
            labels=labels or {},
            base_url=_holder_url_checked(base_url),
            enabled=enabled,
            receives_templates=receives_templates,
        )
        holder.secret = secret  # sealed (write-only)
        holder.save()
        audit_record(
            "biometrics.holder_added",
            actor=actor,
            school_id=school.pk,
            data={
                "id": holder.pk,
                "label": name,
                "base_url": base_url,
                "enabled": enabled,
                "receives_templates": receives_templates,
            },
        )
    return holder


def holder_update(
    *,
    holder: Holder,
    actor: Actor,
    name: str | None = None,
    base_url: str | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
    receives_templates: bool | None = None,
    labels: dict | None = None,
) -> Holder:
    """Change a holder (None leaves a field as it is; an address is checked as in
    `holder_create`). The audit row says the secret changed, never what it is; the secret it
    already has changes nothing."""
    values = given(
        name=name,
        labels=labels,
        base_url=_holder_url_checked(base_url) if base_url is not None else None,
        enabled=enabled,
        receives_templates=receives_templates,
    )
    if secret is not None and not holder.has_secret(secret):
        values["sealed_secret"] = holder.seal(secret)
    with transaction.atomic():
        audited_update(
            instance=holder,
            values=values,
            action="biometrics.holder_changed",
            actor=actor,
            school_id=holder.school_id,
            hidden={"sealed_secret"},
        )
    return holder


def holder_delete(*, holder: Holder, actor: Actor) -> None:
    """Forget a holder, with the portal's record of the copies sent to it (its erasure steps
    keep their history, without the link)."""
    audited_delete(
        holder,
        action="biometrics.holder_removed",
        actor=actor,
        school_id=holder.school_id,
        data={"label": holder.name, "copies": holder.copies.count()},
    )
