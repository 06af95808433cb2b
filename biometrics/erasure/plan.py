"""The plan of an erasure: which systems it reaches, and in which order (docs/erasure.md)."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import OPEN, ErasureStatus, ErasureStep, Holder
from ..systems import KEY_STORE, MATCH_CACHE, PHOTO_STORAGE, PORTAL_DB
from .stores import erasure_stores

__all__ = ["COPY_TASK", "OPEN", "PREREQUISITES", "STEP_TASK", "StepFailed", "local_kinds"]

#: The Celery task that runs a step (registered in biometrics.tasks under this name).
STEP_TASK = "biometrics.tasks.erasure_step_task"
#: The Celery task that pushes a template copy to a holder (re-driven by the watchdog).
COPY_TASK = "biometrics.tasks.template_copy_push_task"

# A step runs once the kinds it waits for are verified: the match cache is dropped after the
# database rows are gone (so no process can rebuild it with the child in it). The key is
# destroyed last, once every other step is verified (every copy is known to be gone).
PREREQUISITES = {
    "cache": {"database"},
}
# Steps on the portal's own stores run one after another in a single task (each is a few
# queries or a folder); each holder gets a task of its own, so a slow or failing holder
# delays nobody else. Whichever task finds the last other step verified destroys the key.
# Stores registered by the apps above (the portal's downloads) are local too.
BUILT_IN_LOCAL_KINDS = frozenset({"database", "media", "cache", "key"})


def local_kinds() -> frozenset[str]:
    return BUILT_IN_LOCAL_KINDS | {store.system.kind for store in erasure_stores()}


class StepFailed(Exception):
    """A step could not finish now; it will be retried."""


def erasure_steps_for(school_id: int, holders: Iterable[Holder] | None = None) -> list[ErasureStep]:
    """The systems an erasure must reach (unsaved steps); the key step is destroyed last."""
    if holders is None:
        holders = Holder.objects.filter(school_id=school_id).order_by("name")
    steps = [
        ErasureStep(system=system.name, kind=system.kind)
        for system in (PORTAL_DB, PHOTO_STORAGE, MATCH_CACHE)
    ]
    steps += [ErasureStep(system=s.system.name, kind=s.system.kind) for s in erasure_stores()]
    steps += [ErasureStep(system=h.name, kind="http", holder=h) for h in holders]
    steps.append(ErasureStep(system=KEY_STORE.name, kind=KEY_STORE.kind))
    return steps


def runnable(step: ErasureStep, steps: list[ErasureStep]) -> bool:
    """Whether every step this one waits for (in the same request) is verified."""
    if step.kind == "key":
        return all(s.status == ErasureStatus.VERIFIED for s in steps if s.kind != "key")
    waits_for = PREREQUISITES.get(step.kind, set())
    return all(s.status == ErasureStatus.VERIFIED for s in steps if s.kind in waits_for)


def awaits_confirmation(step: ErasureStep) -> bool:
    """A holder step whose holder was removed from the configuration: nothing can be asked
    any more, so it waits for a DPO's confirmation (biometrics.erasure.confirmation)."""
    return step.kind == "http" and step.holder_id is None and step.status != ErasureStatus.VERIFIED
