"""Reads scoped by the requester: a guardian sees only their own children."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Guardian, Student


def children_for_guardian(guardian: Guardian) -> QuerySet[Student]:
    return (
        Student.objects.filter(guardianships__guardian=guardian)
        .select_related("school")
        .order_by("name")
        .distinct()
    )


def child_for_guardian(guardian: Guardian, child_id) -> Student:
    """The child if this guardian is linked to it; Student.DoesNotExist (→ 404) otherwise."""
    return children_for_guardian(guardian).get(pk=child_id)
