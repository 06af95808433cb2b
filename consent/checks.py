"""Deployment checks (`manage.py check`) for settings the consent models read."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from .models.schools import FACE_TOLERANCE_MAX, FACE_TOLERANCE_MIN


@register()
def face_tolerance_in_range(app_configs, **kwargs) -> list[Error]:
    """FACE_TOLERANCE is every new school's default tolerance: one outside the bounds a school
    may choose would make creating a school fail its validation."""
    value = settings.FACE_TOLERANCE
    if FACE_TOLERANCE_MIN <= value <= FACE_TOLERANCE_MAX:
        return []
    return [
        Error(
            f"FACE_TOLERANCE is {value}; it must be between {FACE_TOLERANCE_MIN} and "
            f"{FACE_TOLERANCE_MAX} (the model's authors suggest stricter than 0.6 for children).",
            id="consent.E001",
        )
    ]
