"""A school's record of processing activities (UK GDPR / GDPR Art 30(1)), for its DPO and
the regulator: downloadable from the school's admin page as JSON (the whole record) or CSV (one
row per purpose), each download audited.

Art 30(1) asks for (a) the controller and its DPO, (b) the purposes, (c) the categories of
data subjects and of personal data, (d) the recipients, (e) transfers to third countries,
(f) the time limits for erasure and (g) the security measures; each purpose also carries its
lawful basis, its notice and its DPIA with the DPO's sign-off. Assembled here, above both apps:
the systems come from the biometrics catalogue and the holders configured for the school, the
purposes and the policy from consent. Written in English (a record for the school, not a
parent's page).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from urllib.parse import urlsplit

from django.utils import translation

from biometrics.faces import MODEL_NAME
from biometrics.models import Holder
from biometrics.systems import KEY_STORE, MATCH_CACHE, PHOTO_STORAGE, PORTAL_DB, holder_system
from consent.models import Purpose, School
from consent.receipts import transparency_url

RECORD_VERSION = "1"
LAWFUL_BASIS = (
    "Explicit consent, purpose by purpose (UK GDPR Art 6(1)(a) and 9(2)(a)); written consent "
    "of a parent with no parent's objection and no refusal by the child (Protection of "
    "Freedoms Act 2012 ss.26-27)."
)
DATA_SUBJECTS = ["Pupils of the school (children)", "Their parents and guardians"]
# (category, special category under Art 9, what it is)
DATA_CATEGORIES = [
    ("Pupil roster details", False, "name, date of birth, class, the school's pupil id"),
    ("Enrolment photos", True, "photos of the child's face, from which templates are made"),
    ("Face templates", True, f"128-number embeddings ({MODEL_NAME}): biometric data"),
    ("Recognition events", True, "time, device, purpose and match distance of each match"),
    ("Consent decisions", False, "who decided what, when, on which notice; hashed IP and agent"),
    ("Guardian contact details", False, "name, email address, language"),
    ("Access and audit trail", False, "who viewed or changed what, under pseudonyms"),
]
SECURITY_MEASURES = [
    "Photos and templates encrypted at rest (AES-256-GCM) under a per-child data key, wrapped "
    "by a key-encryption key held outside the database; the data key is kept in a separate "
    "key store and destroyed at erasure (crypto-shredding makes backups unreadable).",
    "Connected systems see only a pseudonymous subject id, never a name; every request to "
    "them is HMAC-SHA256 signed and refused after 5 minutes.",
    "Identification and enrolment check the consent rule live, at each request.",
    "Staff see only their own school's records; every staff view of biometric data is "
    "logged and shown to the parent.",
    "Parents sign in with single-use links valid for 15 minutes; no passwords.",
    "A hash-chained, append-only audit trail with no biometric data or names in events.",
    "Background jobs carry ids only: no image or embedding travels on the message broker.",
]
CSV_COLUMNS = [
    "controller",
    "controller_address",
    "dpo_name",
    "dpo_email",
    "purpose",
    "purpose_name",
    "description",
    "enabled",
    "lawful_basis",
    "data_subjects",
    "data_categories",
    "systems",
    "recipients",
    "third_country_transfers",
    "retention",
    "security_measures",
    "non_biometric_alternative",
    "notice_version",
    "dpia_reference",
    "dpia_signed_off_by",
    "dpia_signed_off_at",
]


def processing_record(school: School, *, now: datetime) -> dict:
    """The school's record of processing, as of `now`."""
    holders = list(Holder.objects.filter(school=school).order_by("name"))
    purposes = list(
        Purpose.objects.filter(school=school)
        .prefetch_related("notices", "dpia_sign_offs__signed_by")
        .order_by("code")
    )
    with translation.override("en"):
        systems = [
            {"name": s.name, "kind": s.kind, "holds": [str(h) for h in s.holds]}
            for s in (PORTAL_DB, PHOTO_STORAGE, MATCH_CACHE, KEY_STORE)
        ] + [
            {
                "name": h.name,
                "kind": "http",
                "holds": [str(w) for w in holder_system(h.name).holds],
                "enabled": h.enabled,
            }
            for h in holders
        ]
    recipients = [_recipient(h) for h in holders] + [
        {
            "name": "The school's mail service",
            "kind": "email",
            "receives": "guardians' email addresses, notices, sign-in links and receipts",
        }
    ]
    retention = _retention(school)
    return {
        "record_version": RECORD_VERSION,
        "generated_at": now.isoformat(),
        "controller": {
            "name": school.name,
            "address": school.address,
            "website": school.website,
            "jurisdiction": school.jurisdiction,
            "transparency_page": transparency_url(school),
        },
        "dpo": {"name": school.dpo_name, "email": school.dpo_email},
        "activities": [_activity(p) for p in purposes],
        "data_subjects": DATA_SUBJECTS,
        "data_categories": [
            {"category": name, "special_category": special, "content": what}
            for name, special, what in DATA_CATEGORIES
        ],
        "systems": systems,
        "recipients": recipients,
        "third_country_transfers": _transfers(holders),
        "retention": retention,
        "security_measures": SECURITY_MEASURES,
    }


def _recipient(holder: Holder) -> dict:
    return {
        "name": holder.name,
        "kind": "connected system (holder protocol)",
        "host": urlsplit(holder.base_url).hostname or "",
        "receives": "face template copies under a pseudonym"
        if holder.receives_templates
        else "requests to erase and to report what it holds",
        "enabled": holder.enabled,
    }


def _transfers(holders: list[Holder]) -> str:
    hosts = sorted({urlsplit(h.base_url).hostname or "" for h in holders} - {""})
    if not hosts:
        return "None: no connected system outside the portal is configured."
    return (
        "None recorded by the portal. The DPO must confirm where these connected systems are "
        f"hosted: {', '.join(hosts)}."
    )


def _retention(school: School) -> dict:
    return {
        "face_templates_and_photos": (
            "erased when no purpose is active for the child, and at most "
            f"{school.template_max_age_days} days after the last recognition"
        ),
        "leavers": f"everything erased within {school.leaver_window_days} days of leaving",
        "recognition_events": f"deleted after {school.event_window_days} days",
        "consent": f"valid {school.consent_validity_days} days, then asked again",
        "downloads": f"deleted {school.export_expiry_hours} hours after they are ready",
        "roster_files": "deleted when their import ends",
        "consent_decisions_and_erasure_receipts": (
            "kept as proof of consent and of erasure; they hold no biometric data"
        ),
    }


def _activity(purpose: Purpose) -> dict:
    notice = purpose.current_notice
    sign_off = purpose.dpia_sign_off()
    return {
        "purpose": purpose.code,
        "name": purpose.name,
        "description": purpose.description,
        "enabled": purpose.enabled,
        "lawful_basis": LAWFUL_BASIS,
        "non_biometric_alternative": purpose.alternative,
        "notice_version": notice.version if notice else None,
        "notice_sha256": notice.sha256 if notice else None,
        "dpia": {
            "reference": purpose.dpia_reference,
            "signed_off": sign_off is not None,
            "signed_off_by": _person(sign_off.signed_by) if sign_off else None,
            "signed_off_at": sign_off.signed_at.isoformat() if sign_off else None,
        },
    }


def _person(user) -> str:
    return user.get_full_name() or user.get_username()


def processing_record_csv(record: dict) -> str:
    """The record as CSV: one row per purpose, every Art 30(1) field in its own column."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    shared = {
        "controller": record["controller"]["name"],
        "controller_address": record["controller"]["address"],
        "dpo_name": record["dpo"]["name"],
        "dpo_email": record["dpo"]["email"],
        "data_subjects": "; ".join(record["data_subjects"]),
        "data_categories": "; ".join(
            c["category"] + (" (special category)" if c["special_category"] else "")
            for c in record["data_categories"]
        ),
        "systems": "; ".join(s["name"] for s in record["systems"]),
        "recipients": "; ".join(r["name"] for r in record["recipients"]),
        "third_country_transfers": record["third_country_transfers"],
        "retention": "; ".join(
            f"{name.replace('_', ' ')}: {rule}" for name, rule in record["retention"].items()
        ),
        "security_measures": " ".join(record["security_measures"]),
    }
    for activity in record["activities"]:
        row = {
            **shared,
            "purpose": activity["purpose"],
            "purpose_name": activity["name"],
            "description": activity["description"],
            "enabled": "yes" if activity["enabled"] else "no",
            "lawful_basis": activity["lawful_basis"],
            "non_biometric_alternative": activity["non_biometric_alternative"],
            "notice_version": activity["notice_version"] or "",
            "dpia_reference": activity["dpia"]["reference"],
            "dpia_signed_off_by": activity["dpia"]["signed_off_by"] or "not signed off",
            "dpia_signed_off_at": activity["dpia"]["signed_off_at"] or "",
        }
        writer.writerow({name: _cell(value) for name, value in row.items()})
    return out.getvalue()


def _cell(value: object) -> str:
    # A school's text opened in a spreadsheet must not run as a formula.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
