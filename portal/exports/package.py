"""Build the export package: a ZIP written as a stream, encrypted as it is written (SPEC §5).

Memory stays flat however much is held: recognition events and the access log are read with
database iterators and written straight into their ZIP entries; the ZIP itself goes through an
encrypting writer, so no plaintext ever touches the disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import datetime

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from biometrics.crypto import KeyDestroyed, child_key_for_reading
from biometrics.faces import MODEL_NAME
from biometrics.holders.protocol import HolderError
from biometrics.models import (
    ErasureRequest,
    ErasureStatus,
    FaceTemplate,
    Holder,
    Photo,
    PhotoStatus,
    RecognitionEvent,
)
from biometrics.receipts import signed_receipt
from biometrics.selectors import photo_bytes, retention_for, template_embedding
from consent.audit import ACCESS_ACTIONS
from consent.models import AuditEvent, ConsentDecision, Student
from consent.receipts import transparency_url
from consent.rules import load_for_rule, purpose_statuses
from consent.selectors import consent_overview

EVENTS_SENTINEL = "@@RECOGNITION_EVENTS@@"
ITER_CHUNK = 2000
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class HashingWriter:
    """Wraps a ZIP entry's stream, hashing what goes into it (for SHA256SUMS). Small writes
    (a CSV row, one event) are gathered into 64 KiB blocks before compression and encryption."""

    BLOCK = 64 * 1024

    def __init__(self, raw) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.buffer = bytearray()

    def write(self, data) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.hash.update(data)
        self.buffer += data
        if len(self.buffer) >= self.BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.raw.write(bytes(self.buffer))
            self.buffer.clear()


class Package:
    def __init__(self, out, progress=None) -> None:
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.sums: list[tuple[str, str]] = []
        self.progress = progress or (lambda pct: None)

    def entry(self, name: str, *, stored: bool = False):
        info = zipfile.ZipInfo(name, date_time=timezone.localtime().timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        return _Entry(self, name, self.zip.open(info, "w", force_zip64=True))

    def write(self, name: str, data: bytes | str, *, stored: bool = False) -> None:
        with self.entry(name, stored=stored) as fh:
            fh.write(data)

    def close(self) -> None:
        lines = "".join(f"{digest}  {name}\n" for name, digest in self.sums)
        with self.zip.open("SHA256SUMS", "w") as fh:
            fh.write(lines.encode())
        self.zip.close()


class _Entry:
    def __init__(self, package: Package, name: str, raw) -> None:
        self.package, self.name, self.raw = package, name, raw
        self.writer = HashingWriter(raw)

    def __enter__(self) -> HashingWriter:
        return self.writer

    def __exit__(self, *exc) -> None:
        self.writer.flush()
        self.raw.close()
        self.package.sums.append((self.name, self.writer.hash.hexdigest()))


class _TextWriter(io.TextIOBase):
    """csv.writer needs a text stream; this one encodes into a HashingWriter."""

    def __init__(self, target: HashingWriter) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(text.encode("utf-8"))
        return len(text)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _events(student: Student):
    return (
        RecognitionEvent.objects.filter(student=student)
        .order_by("at", "pk")
        .values_list("at", "device", "purpose__code", "distance")
        .iterator(chunk_size=ITER_CHUNK)
    )


def _access(student: Student):
    return (
        AuditEvent.objects.filter(subject=str(student.subject_id), action__in=ACCESS_ACTIONS)
        .order_by("at", "pk")
        .values_list("at", "actor_kind", "actor_label", "action")
        .iterator(chunk_size=ITER_CHUNK)
    )


def holder_reports(student: Student) -> list[dict]:
    """What each connected holder says it holds about the child — or that it did not answer."""
    rows = []
    for holder in Holder.objects.filter(school_id=student.school_id).order_by("name"):
        checked_at = timezone.now()
        try:
            reported = holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS).get_subject(
                str(student.subject_id)
            )
            reachable = True
        except (HolderError, ValueError, OSError):
            reported, reachable = None, False
        rows.append(
            {
                "name": holder.name,
                "kind": "http",
                "holds": ["face template copies", "recognition events"],
                "reachable": reachable,
                "checked_at": checked_at.isoformat(),
                "reported": reported,
            }
        )
    return rows


def build_package(*, student: Student, guardian, language: str, out, progress=None) -> None:
    """Write the whole package for `student` to the binary stream `out`.

    1. Gather the small parts (child, purposes, photos' metadata, templates, decisions,
       erasures, what every holder reports) and the retention and rights statements.
    2. Write photos byte-identical, templates.csv, the streamed CSVs and data.json.
    3. Write index.html in the parent's language, receipts, then SHA256SUMS last.
    """
    progress = progress or (lambda pct: None)
    now = timezone.now()
    student = load_for_rule([student.pk])[student.pk]
    school = student.school
    statuses = purpose_statuses(student, at=now)
    overview = consent_overview(student, viewer=guardian)
    photos = list(
        Photo.objects.filter(
            student=student, status__in=[PhotoStatus.PENDING, PhotoStatus.ENROLLED]
        ).order_by("captured_at")
    )
    templates = list(FaceTemplate.objects.filter(student=student).order_by("created_at"))
    try:
        key = child_key_for_reading(student.pk) if (photos or templates) else None
    except KeyDestroyed:
        key, photos, templates = None, [], []
    event_count = RecognitionEvent.objects.filter(student=student).count()
    last_event = RecognitionEvent.objects.filter(student=student).order_by("-at").first()
    last_interaction = max(
        [
            d
            for d in [
                last_event.at if last_event else None,
                *(t.created_at for t in templates[-1:]),
            ]
            if d
        ],
        default=None,
    )
    systems = holder_reports(student)
    progress(10)

    with translation.override(language):
        retention = retention_for(student, statuses, last_interaction=last_interaction, now=now)
        rights = [
            _("See everything held about your child (this package), at any time, free."),
            _("Withdraw consent or object, purpose by purpose, in one step; it works at once."),
            _("Have everything erased from every system, with a signed receipt."),
            _("Take this data elsewhere: data.json follows a published JSON Schema."),
            _("Your child can refuse at any age; nobody can override that."),
            _("Complain to the school's data protection officer or to the regulator."),
        ]
        complaints = _(
            "Contact the school's data protection officer first: %(dpo)s. You can also complain "
            "to the data protection regulator (in the UK, the ICO: ico.org.uk)."
        ) % {"dpo": f"{school.dpo_name} <{school.dpo_email}>"}
        automated = {
            "exists": True,
            "logic": _(
                "A camera's photo is turned into 128 numbers by %(model)s and compared with "
                "your child's face template; if the distance is below %(tolerance)s and consent "
                "for that purpose is active at that moment, the camera is told who it is."
            )
            % {"model": MODEL_NAME, "tolerance": settings.FACE_TOLERANCE},
            "limits": _(
                "The model was trained on adults; its authors warn that it mixes up children "
                "more easily, and its accuracy differs between ethnic groups. A match opens a "
                "gate or marks attendance; it is never the only basis for an important decision."
            ),
            "tolerance": settings.FACE_TOLERANCE,
        }
        source = _(
            "Photos were taken at school by school staff (or provided by you); templates are "
            "computed from them; recognition events come from the school's cameras."
        )

    package = Package(out, progress)
    photo_rows = []
    for photo in photos:
        name = f"photos/{photo.pk}.{EXTENSIONS.get(photo.content_type, 'bin')}"
        package.write(name, photo_bytes(photo, key=key), stored=True)
        photo_rows.append(
            {
                "id": str(photo.pk),
                "file": name,
                "captured_at": photo.captured_at.isoformat(),
                "source": photo.source,
                "sha256": photo.sha256,
                "width": photo.width,
                "height": photo.height,
                "content_type": photo.content_type,
            }
        )
    progress(30)
    template_rows = []
    with package.entry("templates.csv") as fh:
        writer = csv.writer(_TextWriter(fh))
        writer.writerow(["template_id", *[f"e{i}" for i in range(128)]])
        for template in templates:
            embedding = [float(x) for x in template_embedding(template, key=key)]
            writer.writerow([str(template.pk), *[repr(x) for x in embedding]])
            template_rows.append(
                {
                    "id": str(template.pk),
                    "created_at": template.created_at.isoformat(),
                    "model": template.model,
                    "model_version": template.model_version,
                    "detector": template.detector,
                    "landmarks": template.landmarks,
                    "photo_id": str(template.photo_id) if template.photo_id else None,
                    "embedding": embedding,
                }
            )
    with package.entry("recognition_events.csv") as fh:
        writer = csv.writer(_TextWriter(fh))
        writer.writerow(["at", "device", "purpose", "distance"])
        for at, device, purpose, distance in _events(student):
            writer.writerow([at.isoformat(), device, purpose, f"{distance:.4f}"])
    progress(55)
    access_rows = []
    with package.entry("access_log.csv") as fh:
        writer = csv.writer(_TextWriter(fh))
        writer.writerow(["at", "actor", "action"])
        for at, kind, label, action in _access(student):
            actor = f"{label} ({kind})" if label else kind
            writer.writerow([at.isoformat(), actor, action])
            if len(access_rows) < 10000:
                access_rows.append({"at": at.isoformat(), "actor": actor, "action": action})
    decisions = list(
        ConsentDecision.objects.filter(student=student).select_related("purpose").order_by("at")
    )
    for decision in decisions:
        package.write(
            f"consent_receipts/{decision.receipt_id}.json",
            json.dumps(decision.receipt, indent=2, ensure_ascii=False),
        )
    erasures = list(ErasureRequest.objects.filter(student=student).order_by("requested_at"))
    for erasure in erasures:
        if erasure.status == ErasureStatus.VERIFIED:
            package.write(
                f"erasure_receipts/{erasure.pk}.json",
                json.dumps(signed_receipt(erasure), indent=2, ensure_ascii=False),
            )
    progress(70)

    builtin_systems = [
        {
            "name": "Guardian portal database",
            "kind": "database",
            "holds": ["photo records", "face templates", "recognition events"],
            "reachable": True,
            "checked_at": now.isoformat(),
            "reported": {
                "photos": len(photos),
                "templates": len(templates),
                "recognition_events": event_count,
            },
        },
        {
            "name": "Photo storage",
            "kind": "media",
            "holds": ["photos"],
            "reachable": True,
            "checked_at": now.isoformat(),
            "reported": {"photos": len(photos)},
        },
    ]
    document = {
        "schema_version": "1",
        "generated_at": now.isoformat(),
        "language": language,
        "child": {
            "id": str(student.pk),
            "pseudonym": str(student.subject_id),
            "name": student.name,
            "school": school.name,
            "class_name": student.class_name,
            "status": student.status,
        },
        "controller": {
            "school": school.name,
            "address": school.address,
            "dpo_name": school.dpo_name,
            "dpo_email": school.dpo_email,
            "transparency_page": transparency_url(school),
        },
        "purposes": [
            {
                k: row[k]
                for k in (
                    "code",
                    "name",
                    "description",
                    "status",
                    "reason",
                    "alternative",
                    "dpia_reference",
                    "notice_version",
                    "notice_sha256",
                    "notice_text",
                )
            }
            for row in overview
        ],
        "categories": [
            "photographs",
            "face templates (biometric)",
            "recognition events",
            "consent decisions",
            "access log",
        ],
        "source": source,
        "photos": photo_rows,
        "templates": template_rows,
        "recognition_events": {"count": event_count, "items": EVENTS_SENTINEL},
        "systems": builtin_systems + systems,
        "recipients": [s["name"] for s in systems],
        "retention": {
            "destroy_by": retention["destroy_by"].isoformat(),
            "rule": str(retention["rule"]),
            "recognition_events_kept_days": retention["recognition_events_kept_days"],
        },
        "rights": [str(r) for r in rights],
        "complaints": str(complaints),
        "automated_decision_making": {
            k: (str(v) if isinstance(v, str) else v) for k, v in automated.items()
        },
        "consent_decisions": [
            {
                "at": d.at.isoformat(),
                "purpose": d.purpose.code if d.purpose_id else "all",
                "decision": d.decision,
                "by": "child"
                if d.guardian_id is None
                else ("you" if d.guardian_id == guardian.pk else "another_guardian"),
                "notice_version": d.notice_version,
                "receipt_id": str(d.receipt_id),
            }
            for d in decisions
        ],
        "access_log": access_rows,
        "erasures": [
            {
                "id": str(e.pk),
                "status": e.status,
                "requested_at": e.requested_at.isoformat(),
                "completed_at": _iso(e.completed_at),
            }
            for e in erasures
        ],
    }
    text = json.dumps(document, indent=1, ensure_ascii=False)
    head, tail = text.split(f'"{EVENTS_SENTINEL}"')
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
    progress(90)

    with translation.override(language):
        html = render_to_string(
            "portal/export_index.html",
            {
                "doc": document,
                "events_count": event_count,
                "retention": retention,
                "generated_at": now,
                "language": language,
            },
        )
    package.write("index.html", html)
    package.close()
