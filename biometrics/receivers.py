"""biometrics reacts to consent: it never decides consent, it acts on what consent announces."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Student
from consent.signals import purposes_changed, storage_locations_asked

from .erasure import erasure_open
from .models import FaceTemplate, Holder, Photo, RecognitionEvent
from .systems import STORAGE_LOCATIONS

SYSTEM = Actor.system("consent change")


def holds_biometric_data(student) -> bool:
    return (
        Photo.objects.filter(student=student).exists()
        or FaceTemplate.objects.filter(student=student).exists()
        or RecognitionEvent.objects.filter(student=student).exists()
    )


@receiver(purposes_changed)
def on_purposes_changed(sender, *, student, ended: set, still_active: set, **kwargs) -> None:
    """No purpose left → erase everything; some purposes ended → erase their events."""
    if not ended:
        return
    if sender is Student:
        # A leaver: matching stopped at once (the consent rule), and the retention job erases
        # everything at the end of the school's leaver window (at most 30 days).
        return
    if not still_active:
        if holds_biometric_data(student):
            erasure_open(student=student, trigger="consent_lost", actor=SYSTEM)
        return
    with transaction.atomic():
        deleted, _ = RecognitionEvent.objects.filter(
            student=student, purpose__code__in=ended
        ).delete()
        audit_record(
            "biometrics.purpose_events_erased",
            actor=SYSTEM,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"purposes": sorted(ended), "events": deleted},
        )


@receiver(storage_locations_asked)
def on_storage_locations_asked(sender, *, school_id: int, **kwargs) -> list[str]:
    """Where a consent receipt says the child's data is stored: ours, then each holder."""
    holders = Holder.objects.filter(school_id=school_id).values_list("name", flat=True)
    return [*STORAGE_LOCATIONS, *holders]
