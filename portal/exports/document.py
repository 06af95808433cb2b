"""data.json: the held-data document as a download carries it.

Every section the parent's page shows comes from `held_data`, in the same rows: the child, the
purposes, each photo and template, the recognition events, every system, the retention rule,
the consent decisions and the erasures. The download adds what only it carries — each photo's
file, each template's 128 numbers, every event and every access (streamed by package.py) —
and the statements GDPR Art 15 asks for: the controller, the categories, the source, the
rights, how to complain, the automated decision-making and its limits, the recipients.
Call it inside `translation.override(language)`: its words are in the parent's language.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from biometrics.faces import MODEL_NAME
from biometrics.holders.protocol import HolderError
from biometrics.models import Holder
from biometrics.systems import holder_system
from consent.models import Student
from consent.receipts import transparency_url
from consent.signing import CANONICAL_FORM, key_history_url

SCHEMA_VERSION = "1"
#: Where data.json's streamed recognition events go (package.py writes them in its place).
EVENTS_SENTINEL = "@@RECOGNITION_EVENTS@@"
CATEGORIES = [
    "photographs",
    "face templates (biometric)",
    "recognition events",
    "consent decisions",
    "access log",
]
# The fields of each held-data row that data.json publishes, in its order (see schema.py).
CHILD = ("id", "pseudonym", "name", "school", "class_name", "status")
PURPOSE = (
    "code",
    "name",
    "description",
    "status",
    "reason",
    "alternative",
    "dpia_reference",
    "notice_version",
    "notice_language",
    "notice_sha256",
    "notice_text",
)
PHOTO = ("id", "file", "captured_at", "source", "sha256", "width", "height", "content_type")
TEMPLATE = (
    "id",
    "created_at",
    "model",
    "model_version",
    "detector",
    "landmarks",
    "photo_id",
    "embedding",
)
DECISION = ("at", "purpose", "decision", "by", "notice_version", "receipt_id")
ERASURE = ("id", "status", "requested_at", "completed_at")


def export_document(
    held: dict,
    *,
    student: Student,
    language: str,
    now: datetime,
    files: dict,
    embeddings: dict,
    access_log: list[dict],
) -> dict:
    """data.json's content. `held` is the child's held-data document; `files` names each photo's
    file and `embeddings` holds each template's numbers, by id, as the package wrote them (an
    item it could not write, its key destroyed by an erasure under way, is left out)."""
    systems = _systems_asked(held, student)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": now,
        "language": language,
        "child": _pick(held["child"], CHILD),
        "controller": _controller(student),
        "purposes": [_pick(p, PURPOSE) for p in held["purposes"]],
        "categories": CATEGORIES,
        "source": _(
            "Photos were taken at school by school staff (or provided by you); templates are "
            "computed from them; recognition events come from the school's cameras."
        ),
        # Oldest first, as the files and CSV rows are written; the page lists newest first.
        "photos": [
            _pick({**p, "file": files[p["id"]]}, PHOTO)
            for p in _oldest(held["photos"])
            if p["id"] in files
        ],
        "templates": [
            _pick({**t, "embedding": embeddings[t["id"]]}, TEMPLATE)
            for t in _oldest(held["templates"])
            if t["id"] in embeddings
        ],
        "recognition_events": {
            "count": held["recognition_events"]["count"],
            "items": EVENTS_SENTINEL,
        },
        "systems": systems,
        "recipients": [s["name"] for s in systems if s["kind"] == "http"],
        "retention": held["retention"],
        "rights": [
            _("See everything held about your child (this package), at any time, free."),
            _("Withdraw consent or object, purpose by purpose, in one step; it works at once."),
            _("Have everything erased from every system, with a signed receipt."),
            _("Take this data elsewhere: data.json follows a published JSON Schema."),
            _("Your child can refuse at any age; nobody can override that."),
            _("Complain to the school's data protection officer or to the regulator."),
        ],
        "complaints": _(
            "Contact the school's data protection officer first: %(dpo)s. You can also complain "
            "to the data protection regulator (in the UK, the ICO: ico.org.uk)."
        )
        % {"dpo": f"{student.school.dpo_name} <{student.school.dpo_email}>"},
        "automated_decision_making": _automated(student.school),
        "consent_decisions": [_pick(d, DECISION) for d in held["consent_decisions"]],
        "access_log": access_log,
        "erasures": [_pick(e, ERASURE) for e in _oldest(held["erasures"])],
        "receipt_verification": _receipt_verification(),
    }


def _receipt_verification() -> dict:
    """Where the keys that check the receipts in consent_receipts/ and erasure_receipts/ are
    published, and the page that says how to check one (index.html repeats the steps)."""
    return {
        "key_history": key_history_url(),
        "how_to_verify": settings.SITE_URL.rstrip("/") + reverse("portal:receipt-verify"),
        "signed_bytes": CANONICAL_FORM,
    }


def to_json(document: dict) -> str:
    """The document as data.json writes it: ids as strings, times in ISO 8601."""
    return json.dumps(document, indent=1, ensure_ascii=False, default=_jsonable)


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Promise):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _pick(row: dict, fields: tuple[str, ...]) -> dict:
    return {field: row[field] for field in fields}


def _oldest(rows: list[dict]) -> list[dict]:
    return rows[::-1]


def _controller(student: Student) -> dict:
    school = student.school
    return {
        "school": school.name,
        "address": school.address,
        "dpo_name": school.dpo_name,
        "dpo_email": school.dpo_email,
        "transparency_page": transparency_url(school),
    }


def _automated(school) -> dict:
    return {
        "exists": True,
        "logic": _(
            "A camera's photo is turned into 128 numbers by %(model)s and compared with "
            "every face template the school holds. The camera is told who it is only if the "
            "nearest template is your child's, at a distance of at most %(tolerance)s, no "
            "other child's is within %(margin)s of it, and consent for that purpose is active "
            "at that moment."
        )
        % {
            "model": MODEL_NAME,
            "tolerance": school.face_tolerance,
            "margin": school.face_match_margin,
        },
        "limits": _(
            "The model was trained on adults; its authors warn that it mixes up children "
            "more easily, and its accuracy differs between ethnic groups. A match opens a "
            "gate or marks attendance; it is never the only basis for an important decision."
        ),
        "tolerance": school.face_tolerance,
        "margin": school.face_match_margin,
    }


def _systems_asked(held: dict, student: Student) -> list[dict]:
    """The document's systems, each with what it answered when asked just now.

    The portal's own systems answer with the document's counts. Every holder configured for
    the school is asked what it holds, even one the portal never sent a copy to (it is listed
    with 0 items): what a holder reports is the parent's to see, whatever the portal's records
    say, and one that does not answer is named as unreachable.
    """
    checked_at = timezone.now().isoformat()
    photos, templates = len(held["photos"]), len(held["templates"])
    reported = {
        "database": {
            "photos": photos,
            "templates": templates,
            "recognition_events": held["recognition_events"]["count"],
        },
        "media": {"photos": photos},
        "cache": {"templates": templates},
    }
    rows = [
        {**s, "reachable": True, "checked_at": checked_at, "reported": reported[s["kind"]]}
        for s in held["systems"]
        if s["kind"] != "http"
    ]
    copies = {s["name"]: s for s in held["systems"] if s["kind"] == "http"}
    for holder in Holder.objects.filter(school_id=student.school_id).order_by("name"):
        row = copies.get(holder.name) or holder_system(holder.name, holder.label()).row(0)
        rows.append({**row, **_ask(holder, student)})
    return rows


def _ask(holder: Holder, student: Student) -> dict:
    checked_at = timezone.now().isoformat()
    try:
        reported = holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS).get_subject(
            str(student.subject_id)
        )
    except (HolderError, ValueError, OSError):
        return {"reachable": False, "checked_at": checked_at, "reported": None}
    return {"reachable": True, "checked_at": checked_at, "reported": reported}
