"""A parent's download packages are copies of the child's data: every erasure removes them.

Registered with biometrics' erasure when the portal app is ready (portal.apps): each erasure has
a "Parent downloads" step that deletes the child's export rows and their sealed files in
storage, checks that none is left, and is named in the deletion receipt.
"""

from __future__ import annotations

import uuid

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from biometrics.erasure import ErasureStore, StepFailed, erasure_store_register
from biometrics.systems import System

from ..models import Export

EXPORTS = System(
    kind="exports",
    name="Parent downloads",
    label=_("Parent downloads"),
    holds=(pgettext_lazy("held in a system", "download packages (copies of the above)"),),
    erased=("download packages and their sealed files",),
    verification="no download package row or file is left for the child",
)


def export_file_names(export: Export) -> set[str]:
    """Where an export's sealed file is, or may be while it is being built."""
    return {name for name in (export.storage_name, f"exports/{export.pk}.gvz") if name}


def exports_erase(student_ids: list[uuid.UUID]) -> tuple[dict, dict]:
    """Delete the children's download packages: files first, then rows. Verified: no row and
    none of their files left. Returns ({student id: packages erased}, {student id: error})."""
    exports = list(Export.objects.filter(student_id__in=student_ids))
    erased: dict[uuid.UUID, int] = dict.fromkeys(student_ids, 0)
    failed: dict[uuid.UUID, Exception] = {}
    for export in exports:
        try:
            for name in export_file_names(export):
                if default_storage.exists(name):
                    default_storage.delete(name)
        except OSError as exc:
            failed[export.student_id] = exc
    with transaction.atomic():
        Export.objects.filter(pk__in=[e.pk for e in exports]).exclude(
            student_id__in=list(failed)
        ).delete()
    for export in exports:
        if export.student_id not in failed:
            erased[export.student_id] += 1
    left = set(
        Export.objects.filter(student_id__in=student_ids).values_list("student_id", flat=True)
    )
    for export in exports:
        if any(default_storage.exists(name) for name in export_file_names(export)):
            left.add(export.student_id)
    for student_id in left - set(failed):
        failed[student_id] = StepFailed("a download package is still present")
    return {s: n for s, n in erased.items() if s not in failed}, failed


def exports_erasure_register() -> None:
    erasure_store_register(ErasureStore(system=EXPORTS, erase=exports_erase))
