"""biometrics reacts to consent: it never decides consent, it acts on what consent announces."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from consent.actors import Actor
from consent.signals import purposes_changed, storage_locations_asked

from .due import CLOCKS, EVERYTHING, dues_for
from .erasure import erasure_open
from .models import Holder
from .retention import events_erase
from .systems import STORAGE_LOCATIONS

SYSTEM = Actor.system("consent change")


@receiver(purposes_changed)
def on_purposes_changed(sender, *, ended: set, at=None, **kwargs) -> None:
    """Do at once what `erasure_due` says is due now for the children whose purposes changed
    (a decision, a leaver, a purpose disabled): everything → an erasure; events of purposes
    that ended → deleted. What is due later (a leaver's window, a new notice's) is left to the
    retention jobs, which ask the same function. Runs inside the announcing transaction, so
    what it starts commits with the change or not at all."""
    if not ended:
        return
    at = at or timezone.now()
    students = kwargs.get("students") or [kwargs["student"]]
    with transaction.atomic():
        for child in dues_for(students, at=at):
            due = child.due_now(at, reasons=lambda reason: reason not in CLOCKS)
            everything = next((d for d in due if d.what == EVERYTHING), None)
            if everything is not None:
                if child.held.portal:
                    erasure_open(student=child.student, trigger=everything.trigger, actor=SYSTEM)
                continue
            for d in due:
                events_erase(child.student, d, at=at, actor=SYSTEM)


@receiver(storage_locations_asked)
def on_storage_locations_asked(sender, *, school_id: int, **kwargs) -> list[str]:
    """Where a consent receipt says the child's data is stored: ours, then each holder."""
    holders = Holder.objects.filter(school_id=school_id).values_list("name", flat=True)
    return [*STORAGE_LOCATIONS, *holders]
