"""Consent receipts: Kantara Consent Receipt v1.1 fields, plus the ISO/IEC TS 27560 mandatory
fields, for every grant, withdrawal, objection and refusal (docs/consent-rule.md, "Decisions")."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django.conf import settings
from django.urls import reverse

from .models import ConsentDecision, Decision
from .signals import storage_locations_asked

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


def receipt_for(decision: ConsentDecision) -> dict:
    """Build the receipt for a decision (called once, when the decision is recorded)."""
    student = decision.student
    school = student.school
    purpose = decision.purpose
    locations = storage_locations(school.pk)
    policy_url = transparency_url(school)
    validity = timedelta(days=school.consent_validity_days)
    controller = {
        "piiController": school.name,
        "onBehalf": False,
        "contact": school.dpo_name or "Data protection officer",
        "address": school.address,
        "email": school.dpo_email,
        "phone": "",
        "piiControllerUrl": school.website or policy_url,
    }
    purpose_name = purpose.name if purpose else "All biometric purposes"
    purpose_text = purpose.description if purpose else "Every use of the child's face"
    author = (
        {"type": "guardian", "id": str(decision.guardian_id)}
        if decision.guardian_id
        else {"type": "child", "id": str(student.subject_id)}
    )
    return {
        # Kantara Consent Receipt v1.1
        "version": KANTARA_VERSION,
        "jurisdiction": school.jurisdiction,
        "consentTimestamp": int(decision.at.timestamp()),
        "collectionMethod": decision.get_method_display(),
        "consentReceiptID": str(decision.receipt_id),
        "publicKey": "",
        "language": "en",
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
        "noticeVersion": decision.notice_version,
        "noticeSha256": decision.notice_sha256,
        # ISO/IEC TS 27560 mandatory fields
        "iso27560": {
            "schema_version": ISO_SCHEMA,
            "record_id": str(decision.receipt_id),
            "pii_principal_id": str(student.subject_id),
            "privacy_notice": {
                "url": policy_url,
                "version": decision.notice_version,
                "sha256": decision.notice_sha256,
            },
            "language": "en",
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
                f"{school.leaver_window_days} days after leaving"
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
