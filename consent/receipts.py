"""Consent receipts: Kantara Consent Receipt v1.1 fields, plus the ISO/IEC TS 27560 mandatory
fields, for every grant, withdrawal, objection and refusal (docs/consent-rule.md, "Decisions").

Each receipt is signed (Ed25519, `consent.signing`) and names the key that signed it
(`keyId`) and where the key history is published (`keyHistoryUrl`); a parent can check it
offline (the page `/verify-receipt/` says how). It records the notice the decision was made
on: its version, the language of the text shown and that text's SHA-256.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from django.conf import settings
from django.urls import reverse

from . import signing
from .models import ConsentDecision, Decision
from .signals import storage_locations_asked
from .texts import purpose_words

KANTARA_VERSION = "KI-CR-v1.1.0"
ISO_SCHEMA = "ISO/IEC TS 27560:2023"

EVENT_STATE: dict[str, str] = {
    Decision.GRANT: "ConsentGiven",
    Decision.WITHDRAW: "ConsentWithdrawn",
    Decision.OBJECT: "ConsentRefused",
    Decision.CHILD_REFUSAL: "ConsentRefused",
    Decision.CHILD_REFUSAL_LIFTED: "ConsentRefusalLifted",
}


def transparency_url(school) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("portal:transparency", args=[school.slug])


def storage_locations(school_id: int) -> list[str]:
    """Every system the apps that store the child's data name for this school."""
    replies = storage_locations_asked.send(sender=ConsentDecision, school_id=school_id)
    return [name for _receiver, names in replies for name in cast(list[str], names)]


def notice_shown(decision: ConsentDecision) -> dict:
    """The notice text the decision was made on: version, language and SHA-256.

    The decision records the language of the text the person read (`consent.texts`: their
    language's, or the school's default when the school has none in theirs) and that text's
    hash. A decision recorded before notices had a text per language has no language: its text
    was the one the school wrote, in the portal's default language (LANGUAGE_CODE, "en").
    """
    return {
        "version": decision.notice_version,
        "language": decision.notice_language or settings.LANGUAGE_CODE,
        "sha256": decision.notice_sha256,
    }


def receipt_for(decision: ConsentDecision) -> dict:
    """Build the signed receipt for a decision (called once, when the decision is recorded)."""
    receipt = _receipt_body(decision)
    return {**receipt, "signature": signing.sign(receipt)}


def consent_receipt_verify(document: dict) -> signing.Verification:
    """Check a signed consent receipt against the key history: the key it names signed in the
    period that includes its timestamp, and the signature covers exactly this receipt."""
    stamp = document.get("consentTimestamp")
    signed_at = (
        datetime.fromtimestamp(stamp, tz=UTC)
        if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 <= stamp < 2**40
        else None
    )
    key_id = document.get("keyId")
    return signing.verify(
        document,
        key_id=key_id if isinstance(key_id, str) else "",
        signed_at=signed_at,
        signed_within=timedelta(seconds=1),  # the timestamp is in whole seconds
    )


def _receipt_body(decision: ConsentDecision) -> dict:
    student = decision.student
    school = student.school
    purpose = decision.purpose
    locations = storage_locations(school.pk)
    policy_url = transparency_url(school)
    validity = timedelta(days=school.consent_validity_days)
    notice = notice_shown(decision)
    key = signing.current_key()
    controller = {
        "piiController": school.name,
        "onBehalf": False,
        "contact": school.dpo_name or "Data protection officer",
        # The Kantara schema wants an object here (schema.org PostalAddress's names).
        "address": {"streetAddress": school.address, "addressCountry": school.jurisdiction},
        "email": school.dpo_email,
        "phone": "",
        "piiControllerUrl": school.website or policy_url,
    }
    # The purpose as the person read it, in the notice's language.
    words = purpose_words(purpose, notice["language"]) if purpose else None
    purpose_name = words.name if words else "All biometric purposes"
    purpose_text = words.description if words else "Every use of the child's face"
    if decision.guardian_id:
        author = {"type": "guardian", "id": str(decision.guardian_id)}
    elif decision.decision in (Decision.GRANT, Decision.WITHDRAW):
        # An adult student's own consent (from the 18th birthday only theirs counts).
        author = {"type": "data_subject", "id": str(student.subject_id)}
    else:
        author = {"type": "child", "id": str(student.subject_id)}
    return {
        # Kantara Consent Receipt v1.1
        "version": KANTARA_VERSION,
        "jurisdiction": school.jurisdiction,
        "consentTimestamp": int(decision.at.timestamp()),
        "collectionMethod": decision.get_method_display(),
        "consentReceiptID": str(decision.receipt_id),
        "language": notice["language"],
        "piiPrincipalId": str(student.subject_id),
        "piiControllers": [controller],
        "policyUrl": policy_url,
        "services": [
            {
                "service": purpose_name,
                "purposes": [
                    {
                        "purpose": purpose_text,
                        "purposeCategory": ["Biometric identification"],
                        "consentType": "EXPLICIT",
                        "piiCategory": ["Facial photograph", "Face template (biometric)"],
                        "primaryPurpose": True,
                        "termination": (
                            f"On withdrawal, objection, the child's refusal or leaving school; "
                            f"otherwise after {school.consent_validity_days} days"
                        ),
                        "thirdPartyDisclosure": len(locations) > 2,
                        "thirdPartyName": ", ".join(locations[2:]),
                    }
                ],
            }
        ],
        "sensitive": True,
        "spiCat": ["Biometric data (GDPR Art 9)", "Data of a child"],
        "decision": decision.decision,
        "noticeVersion": notice["version"],
        "noticeLanguage": notice["language"],
        "noticeSha256": notice["sha256"],
        # The signature (added over everything else) and how to check it.
        "keyId": key.key_id,
        "keyHistoryUrl": signing.key_history_url(),
        "signatureAlgorithm": signing.CANONICAL_FORM,
        # ISO/IEC TS 27560 mandatory fields
        "iso27560": {
            "schema_version": ISO_SCHEMA,
            "record_id": str(decision.receipt_id),
            "pii_principal_id": str(student.subject_id),
            "privacy_notice": {
                "url": policy_url,
                "version": notice["version"],
                "language": notice["language"],
                "sha256": notice["sha256"],
            },
            "language": notice["language"],
            "purpose": purpose.code if purpose else "all",
            "pii_information": [
                "photograph",
                "face template (128-d embedding)",
                "recognition events",
            ],
            "pii_controllers": [school.name],
            "storage_locations": locations,
            "retention_period": (
                f"While consent stands; recognition events {school.event_window_days} days; "
                f"templates at most {school.template_max_age_days} days after last use; "
                f"{school.leaver_window_days} days after leaving; "
                f"{school.reconsent_window_days} days after a new notice unless consent is "
                f"given on it"
            ),
            "jurisdiction": school.jurisdiction,
            "recipient_third_parties": locations[2:],
            "withdrawal_method": f"One tap on the child's page: {policy_url}",
            "pii_type": "sensitive (biometric), child",
            "party": {
                "id": author["id"],
                "name": "",  # names stay out of receipts that may be shared
                "address": "",
                "contact": "",
                "type": author["type"],
            },
            "event_time": decision.at.isoformat(),
            "validity_duration": f"P{validity.days}D",
            "entity_id": str(school.slug),
            "event_type": "consent_decision",
            "event_state": EVENT_STATE[decision.decision],
        },
    }
