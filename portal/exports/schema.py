"""The published JSON Schema of an export's data.json (/api/v1/schema/export.json).

data.json is the held-data document as `document.export_document` publishes it; a test keeps
each section's properties here equal to the fields that module picks.
"""

SCHEMA_ID = "https://guardian.example/schema/export-v1.json"

_dt = {"type": "string", "format": "date-time"}
_dt_or_null = {"type": ["string", "null"], "format": "date-time"}
_str = {"type": "string"}
_uuid = {"type": "string", "pattern": "^[0-9a-f-]{36}$"}
_int = {"type": "integer", "minimum": 0}


def _obj(props: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
    }


EXPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "Guardian: everything held about a child",
    **_obj(
        {
            "schema_version": {"const": "1"},
            "generated_at": _dt,
            "language": _str,
            "child": _obj(
                {
                    "id": _uuid,
                    "pseudonym": _uuid,
                    "name": _str,
                    "school": _str,
                    "class_name": _str,
                    "status": {"enum": ["on_roll", "leaver"]},
                }
            ),
            "controller": _obj(
                {
                    "school": _str,
                    "address": _str,
                    "dpo_name": _str,
                    "dpo_email": _str,
                    "transparency_page": _str,
                }
            ),
            "purposes": {
                "type": "array",
                "items": _obj(
                    {
                        "code": _str,
                        "name": _str,
                        "description": _str,
                        "status": {"enum": ["active", "inactive"]},
                        "reason": _str,
                        "alternative": _str,
                        "dpia_reference": _str,
                        "notice_version": {"type": ["integer", "null"]},
                        "notice_language": _str,
                        "notice_sha256": _str,
                        "notice_text": _str,
                    }
                ),
            },
            "categories": {"type": "array", "items": _str},
            "source": _str,
            "photos": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _uuid,
                        "file": _str,
                        "captured_at": _dt,
                        "source": _str,
                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "width": {"type": ["integer", "null"]},
                        "height": {"type": ["integer", "null"]},
                        "content_type": _str,
                    }
                ),
            },
            "templates": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _uuid,
                        "created_at": _dt,
                        "model": _str,
                        "model_version": _str,
                        "detector": _str,
                        "landmarks": _str,
                        "photo_id": {"type": ["string", "null"]},
                        "embedding": {
                            "type": "array",
                            "items": {"type": "number"},
                            "minItems": 128,
                            "maxItems": 128,
                        },
                    }
                ),
            },
            "recognition_events": _obj(
                {
                    "count": _int,
                    "items": {
                        "type": "array",
                        "items": _obj(
                            {
                                "at": _dt,
                                "device": _str,
                                "purpose": _str,
                                "distance": {"type": "number"},
                            }
                        ),
                    },
                }
            ),
            "systems": {
                "type": "array",
                "items": _obj(
                    {
                        "name": _str,  # stable, in English whatever the language
                        "kind": {"enum": ["database", "media", "cache", "http"]},
                        "label": _str,  # the name in the package's language
                        "holds": {"type": "array", "items": _str},
                        "items": _int,
                        "pending": _int,
                        "reachable": {"type": "boolean"},
                        "checked_at": _dt,
                        "reported": {"type": ["object", "null"]},
                    },
                    ["name", "kind", "label", "holds", "items", "reachable", "checked_at"],
                ),
            },
            "recipients": {"type": "array", "items": _str},
            "retention": _obj(
                {"destroy_by": _dt, "rule": _str, "recognition_events_kept_days": _int}
            ),
            "rights": {"type": "array", "items": _str},
            "complaints": _str,
            "automated_decision_making": _obj(
                {
                    "exists": {"type": "boolean"},
                    "logic": _str,
                    "limits": _str,
                    "tolerance": {"type": "number"},
                    "margin": {"type": "number"},
                }
            ),
            "consent_decisions": {
                "type": "array",
                "items": _obj(
                    {
                        "at": _dt,
                        "purpose": _str,
                        "decision": _str,
                        "by": _str,
                        "notice_version": {"type": ["integer", "null"]},
                        "receipt_id": _uuid,
                    }
                ),
            },
            "access_log": {
                "type": "array",
                "items": _obj({"at": _dt, "actor": _str, "action": _str}),
            },
            "erasures": {
                "type": "array",
                "items": _obj(
                    {"id": _uuid, "status": _str, "requested_at": _dt, "completed_at": _dt_or_null}
                ),
            },
            "receipt_verification": _obj(
                {"key_history": _str, "how_to_verify": _str, "signed_bytes": _str}
            ),
        }
    ),
}
