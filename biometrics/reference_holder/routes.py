"""The reference holder's endpoints: routing, request validation and replies (stdlib only).

Everything here runs after the transport (:mod:`.http`) has read the body and authenticated the
caller (its tenant, and the time it signed the request); each endpoint works on that tenant's
data only, and returns ``(status, payload)`` or raises :class:`ApiError`, which the transport
turns into ``{"error": code}``.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from biometrics.holders.protocol import (
    EMBEDDING_RULE,
    MAX_BATCH_SUBJECTS,
    MODEL_RULE,
    SUBJECT_ERASED,
    parse_subject,
    parse_time,
    valid_model,
    validate_embedding,
)

from .store import HolderStore, SubjectErased, now_iso

__all__ = ["ApiError", "Caller", "route"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_LABEL_LENGTH = 100

_LIMIT_RE = re.compile(r"\A[0-9]{1,9}\Z")
# Methods that name a subject: a malformed id is refused (400) before the method is judged, so
# a wildcard can never be read as "every subject".
_SUBJECT_METHODS = frozenset({"GET", "PUT", "DELETE"})


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """Who sent an authenticated request: the tenant its key belongs to, and when it was
    signed (unix seconds, the caller's clock)."""

    tenant: str
    signed_at: int


def _erased() -> ApiError:
    return ApiError(410, SUBJECT_ERASED, "the subject was erased after this copy was made")


def method_not_allowed(*allowed: str) -> ApiError:
    return ApiError(
        405, "method_not_allowed", "method not allowed here", {"Allow": ", ".join(allowed)}
    )


def _bad_subject(detail: str = "subject id must be a UUID") -> ApiError:
    return ApiError(400, "bad_subject", detail)


def _parse_segment(segment: str) -> str | None:
    return parse_subject(urllib.parse.unquote(segment, errors="replace"))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "body must be a JSON object")
    return data


def _label(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL_LENGTH:
        raise ApiError(
            400, f"bad_{key}", f"{key} must be a non-empty string of at most {MAX_LABEL_LENGTH}"
        )
    return value


def route(
    store: HolderStore, caller: Caller, method: str, path: str, query: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """Answer one authenticated request (``path`` without its query string)."""
    tenant = caller.tenant
    if path == "/events":
        if method != "POST":
            raise method_not_allowed("POST")
        return _post_event(store, tenant, body)

    if path == "/erasures":
        if method != "POST":
            raise method_not_allowed("POST")
        return _erase_many(store, caller, body)

    if path == "/subjects":
        if method == "GET":
            return _list_subjects(store, tenant, query)
        if method in _SUBJECT_METHODS:
            raise _bad_subject("missing subject id")
        raise method_not_allowed("GET")

    if path.startswith("/subjects/"):
        parts = path[len("/subjects/") :].split("/")
        subject = _parse_segment(parts[0])
        if subject is None:
            if method in _SUBJECT_METHODS:
                raise _bad_subject()
            subject = ""  # only the 405 answers below are reached, and they do not use it

        if len(parts) == 1:
            if method == "GET":
                held = store.get_subject(tenant, subject)
                if held is None:
                    raise ApiError(404, "not_found", "nothing held for this subject")
                return 200, held
            if method == "DELETE":
                return 200, {"erased": store.delete_subject(tenant, subject, caller.signed_at)}
            raise method_not_allowed("GET", "DELETE")

        if parts[1] == "templates" and len(parts) <= 3:
            template = _parse_segment(parts[2]) if len(parts) == 3 else None
            if template is None:
                if method in _SUBJECT_METHODS:
                    raise ApiError(400, "bad_template", "template id must be a UUID")
                template = ""  # as above: only the 405 answer is reached
            if method == "PUT":
                return _put_template(store, caller, subject, template, body)
            raise method_not_allowed("PUT")

    raise ApiError(404, "not_found", "no such endpoint")


def _put_template(
    store: HolderStore, caller: Caller, subject: str, template: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    data = _json_object(body)
    embedding = validate_embedding(data.get("embedding"))
    if embedding is None:
        raise ApiError(400, "bad_embedding", EMBEDDING_RULE)
    model = data.get("model")
    if not valid_model(model):
        raise ApiError(400, "bad_model", MODEL_RULE)
    # When the copy was made: the portal says when it made the template; without that, the
    # time the request was signed. A copy older than the subject's erasure never comes back.
    created_at = float(caller.signed_at)
    if data.get("created_at") is not None:
        parsed = parse_time(data["created_at"])
        if parsed is None:
            raise ApiError(400, "bad_created_at", "created_at must be an ISO-8601 timestamp")
        created_at = parsed
    try:
        created, stored_at = store.put_template(
            caller.tenant, subject, template, model, embedding, created_at
        )
    except SubjectErased:
        raise _erased() from None
    return (201 if created else 200), {
        "subject": subject,
        "template": template,
        "stored_at": stored_at,
    }


def _erase_many(store: HolderStore, caller: Caller, body: bytes) -> tuple[int, dict[str, Any]]:
    """``POST /erasures {"subjects": [...]}``: erase an explicit list of subjects (never "all")."""
    data = _json_object(body)
    listed = data.get("subjects")
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_BATCH_SUBJECTS:
        raise ApiError(
            400, "bad_subjects", f"subjects must be a list of 1 to {MAX_BATCH_SUBJECTS} ids"
        )
    subjects = [parse_subject(value) for value in listed]
    if any(subject is None for subject in subjects):
        raise _bad_subject()
    erased = store.delete_subjects(caller.tenant, [s for s in subjects if s], caller.signed_at)
    return 200, {"erased": erased}


def _post_event(store: HolderStore, tenant: str, body: bytes) -> tuple[int, dict[str, Any]]:
    data = _json_object(body)
    subject = parse_subject(data.get("subject"))
    if subject is None:
        raise _bad_subject()
    device = _label(data, "device")
    purpose = _label(data, "purpose")
    distance = data.get("distance")
    if (
        isinstance(distance, bool)
        or not isinstance(distance, int | float)
        or not math.isfinite(float(distance))
        or distance < 0
    ):
        raise ApiError(400, "bad_distance", "distance must be a finite number >= 0")
    at = _event_time(data.get("at"))
    try:
        event_id = store.add_event(tenant, subject, device, purpose, float(distance), at)
    except SubjectErased:
        raise _erased() from None
    return 201, {"id": event_id, "subject": subject, "at": at}


def _event_time(value: Any) -> str:
    if value is None:
        return now_iso()
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(400, "bad_at", "at must be an ISO-8601 timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_at", "at must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive times are taken as UTC
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _list_subjects(store: HolderStore, tenant: str, query: str) -> tuple[int, dict[str, Any]]:
    try:
        params = urllib.parse.parse_qs(query, keep_blank_values=True, max_num_fields=20)
    except ValueError:
        raise ApiError(400, "bad_query", "malformed query string") from None
    cursor_value = params.get("cursor", [""])[-1]
    cursor = None
    if cursor_value:
        cursor = parse_subject(cursor_value)
        if cursor is None:
            raise ApiError(400, "bad_cursor", "cursor must be a subject id")
    limit_value = params.get("limit", [""])[-1]
    if limit_value == "":
        limit = DEFAULT_PAGE_SIZE
    elif _LIMIT_RE.match(limit_value) and int(limit_value) >= 1:
        limit = min(int(limit_value), MAX_PAGE_SIZE)
    else:
        raise ApiError(400, "bad_limit", f"limit must be an integer 1..{MAX_PAGE_SIZE}")
    subjects, next_cursor = store.list_subjects(tenant, cursor, limit)
    return 200, {"subjects": subjects, "next_cursor": next_cursor}
