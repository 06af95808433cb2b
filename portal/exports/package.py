"""Build the export package: the held-data document plus what only a download carries
(docs/exports.md, "What the ZIP holds").

The ZIP is written as a stream (zipstream.py) into an encrypting writer, so no plaintext ever
touches the disk, and memory stays flat however much is held: photos are written one at a time,
recognition events and the access log are read with database iterators straight into their
entries (and into data.json, in place of a placeholder).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.template.loader import render_to_string
from django.utils import timezone, translation

from biometrics.crypto import KeyDestroyed, child_key_for_reading
from biometrics.models import ErasureRequest, ErasureStatus, FaceTemplate, Photo, RecognitionEvent
from biometrics.receipts import signed_receipt
from biometrics.selectors import held_data, photo_bytes, template_embedding
from consent.audit import ACCESS_ACTIONS
from consent.models import AuditEvent, ConsentDecision, Guardian, Student

from .document import EVENTS_SENTINEL, export_document, to_json
from .zipstream import Package

ITER_CHUNK = 2000
# data.json carries the start of a very long access log; access_log.csv carries all of it.
ACCESS_ROWS_IN_JSON = 10000
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def build_package(
    *,
    student: Student,
    guardian: Guardian | None,
    language: str,
    out,
    progress: Callable[[int], None] | None = None,
    for_child: bool = False,
) -> None:
    """Write the whole package for `student` to the binary stream `out`.

    1. Build the held-data document in the asker's language (the parent's, or the child's
       for their own package, `for_child`): what the page shows them.
    2. Write the photos byte-identical, templates.csv, recognition_events.csv, access_log.csv
       and the consent and deletion receipts.
    3. Write data.json (the document, with what step 2 wrote), index.html, SHA256SUMS last.
    """
    package = Package(out, progress)
    now = timezone.now()
    with translation.override(language):
        held = held_data(
            student,
            viewer_guardian_id=guardian.pk if guardian is not None else None,
            viewer_child=for_child,
        )
        key = _key(student, held)
        package.progress(10)
        files = _write_photos(package, held["photos"], key) if key else {}
        package.progress(30)
        embeddings = _write_templates(package, held["templates"], key)
        _write_events(package, student)
        package.progress(55)
        access_log = _write_access_log(package, student)
        _write_receipts(package, held)
        package.progress(70)
        document = export_document(
            held,
            student=student,
            language=language,
            now=now,
            files=files,
            embeddings=embeddings,
            access_log=access_log,
        )
        _write_data_json(package, document, student)
        package.progress(90)
        context = {
            "doc": document,
            "events_count": held["recognition_events"]["count"],
            "retention": held["retention"],
            "generated_at": now,
            "language": language,
        }
        package.write("index.html", render_to_string("portal/export_index.html", context))
    package.close()


def _key(student: Student, held: dict) -> bytes | None:
    """The child's key, to decrypt photos and templates; None if there are none to decrypt, or
    if an erasure under way has destroyed it (its last rows are then unreadable, so left out)."""
    if not (held["photos"] or held["templates"]):
        return None
    try:
        return child_key_for_reading(student.pk)
    except KeyDestroyed:
        return None


def _write_photos(package: Package, photos: list[dict], key: bytes) -> dict:
    """Each photo as enrolled, oldest first; returns the file each was written to, by id."""
    stored = Photo.objects.in_bulk([p["id"] for p in photos])
    files = {}
    for photo in (stored[p["id"]] for p in reversed(photos) if p["id"] in stored):
        name = f"photos/{photo.pk}.{EXTENSIONS.get(photo.content_type, 'bin')}"
        package.write(name, photo_bytes(photo, key=key), stored=True)
        files[photo.pk] = name
    return files


def _write_templates(package: Package, templates: list[dict], key: bytes | None) -> dict:
    """templates.csv, one row of 128 numbers per template, oldest first; returns the numbers."""
    stored = FaceTemplate.objects.in_bulk([t["id"] for t in templates]) if key else {}
    embeddings = {}
    with package.csv("templates.csv", ["template_id", *[f"e{i}" for i in range(128)]]) as rows:
        for template in (stored[t["id"]] for t in reversed(templates) if t["id"] in stored):
            embedding = [float(x) for x in template_embedding(template, key=key)]
            rows.writerow([str(template.pk), *[repr(x) for x in embedding]])
            embeddings[template.pk] = embedding
    return embeddings


def _events(student: Student):
    return (
        RecognitionEvent.objects.filter(student=student)
        .order_by("at", "pk")
        .values_list("at", "device", "purpose__code", "distance")
        .iterator(chunk_size=ITER_CHUNK)
    )


def _write_events(package: Package, student: Student) -> None:
    with package.csv("recognition_events.csv", ["at", "device", "purpose", "distance"]) as rows:
        for at, device, purpose, distance in _events(student):
            rows.writerow([at.isoformat(), device, purpose, f"{distance:.4f}"])


def _write_access_log(package: Package, student: Student) -> list[dict]:
    """access_log.csv, oldest first; returns its first rows, for data.json."""
    access = (
        AuditEvent.objects.filter(subject__in=student.pseudonyms(), action__in=ACCESS_ACTIONS)
        .order_by("at", "pk")
        .values_list("at", "actor_kind", "actor_label", "action")
        .iterator(chunk_size=ITER_CHUNK)
    )
    kept = []
    with package.csv("access_log.csv", ["at", "actor", "action"]) as rows:
        for at, kind, label, action in access:
            actor = f"{label} ({kind})" if label else kind
            rows.writerow([at.isoformat(), actor, action])
            if len(kept) < ACCESS_ROWS_IN_JSON:
                kept.append({"at": at.isoformat(), "actor": actor, "action": action})
    return kept


def _write_receipts(package: Package, held: dict) -> None:
    """The receipt of every decision in the document, and of every verified erasure."""
    ids = [d["receipt_id"] for d in held["consent_decisions"]]
    receipts = dict(
        ConsentDecision.objects.filter(receipt_id__in=ids).values_list("receipt_id", "receipt")
    )
    for receipt_id in ids:
        package.write(
            f"consent_receipts/{receipt_id}.json",
            json.dumps(receipts[receipt_id], indent=2, ensure_ascii=False),
        )
    verified = [
        e["id"] for e in reversed(held["erasures"]) if e["status"] == ErasureStatus.VERIFIED
    ]
    erasures = ErasureRequest.objects.in_bulk(verified)
    for erasure_id in verified:
        package.write(
            f"erasure_receipts/{erasure_id}.json",
            json.dumps(signed_receipt(erasures[erasure_id]), indent=2, ensure_ascii=False),
        )


def _write_data_json(package: Package, document: dict, student: Student) -> None:
    """data.json, every recognition event streamed into it in place of the placeholder."""
    head, tail = to_json(document).split(f'"{EVENTS_SENTINEL}"')
    with package.entry("data.json") as fh:
        fh.write(head)
        fh.write("[")
        for i, (at, device, purpose, distance) in enumerate(_events(student)):
            item = {
                "at": at.isoformat(),
                "device": device,
                "purpose": purpose,
                "distance": round(distance, 4),
            }
            fh.write(("," if i else "") + json.dumps(item, ensure_ascii=False))
        fh.write("]")
        fh.write(tail)
