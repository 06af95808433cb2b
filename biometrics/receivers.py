"""biometrics reacts to consent: it never decides consent, it acts on what consent announces."""

from __future__ import annotations

from django.dispatch import receiver
from django.utils import timezone

from consent.actors import Actor
from consent.signals import purposes_changed, storage_locations_asked

from .due import CLOCKS, dues_for
from .models import Holder
from .retention import dues_enforce
from .systems import STORAGE_LOCATIONS

SYSTEM = Actor.system("consent change")


@receiver(purposes_changed)
def on_purposes_changed(sender, *, ended: set, at=None, **kwargs) -> None:
    """Do at once what `erasure_due` says is due now for the children whose purposes changed
    (a decision, a leaver, a purpose disabled): everything → an erasure; events of purposes
    that ended → deleted. What is due later (a leaver's window, a new notice's) is left to the
    retention jobs, which ask the same function. Runs inside the announcing transaction, so
    what it starts commits with the change or not at all. `loaded`: the students carry the
    rule's inputs as they are now (a decision service loaded them), so they are not read again.
    A child the portal holds nothing of gets nothing (`dues_enforce` acts on what is held)."""
    if not ended:
        return
    at = at or timezone.now()
    students = kwargs.get("students") or [kwargs["student"]]
    dues_enforce(
        dues_for(students, at=at, loaded=kwargs.get("loaded", False)),
        at=at,
        reasons=lambda reason: reason not in CLOCKS,
        dry_run=False,
        actor=SYSTEM,
    )


@receiver(storage_locations_asked)
def on_storage_locations_asked(sender, *, school_id: int, **kwargs) -> list[str]:
    """Where a consent receipt says the child's data is stored: ours, then each holder."""
    holders = Holder.objects.filter(school_id=school_id).values_list("name", flat=True)
    return [*STORAGE_LOCATIONS, *holders]
