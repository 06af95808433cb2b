"""What the JSON API accepts as a body (SPEC §8: never a 500 for bad input).

Every JSON body is a JSON object of at most API_JSON_MAX_BYTES, nested at most
API_JSON_MAX_DEPTH deep, whose texts hold no NUL character and no unpaired surrogate (neither
can be stored: PostgreSQL refuses a NUL, and a lone surrogate cannot be encoded as UTF-8), and
whose numbers are finite. The check runs twice over one function: in BoundedJSONParser, for the
views that read their body, and in portal.middleware.ApiBodyMiddleware, before any API view runs
(so also for the views that never read theirs, and before a large body is read at all).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser

TOO_LARGE = "The request body is larger than the API accepts (%(limit)d KiB)."
NOT_JSON = "The body is not valid JSON in UTF-8."
NOT_AN_OBJECT = "The body must be a JSON object: {…}."
TOO_DEEP = "The body is nested more deeply than the API accepts."
BAD_TEXT = "A text in the body holds a NUL character or an unpaired surrogate."
NOT_FINITE = "A number in the body is out of range."

# A JSON string, as the scanner reads it: everything between two unescaped quotes.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BodyRejected(APIException):
    """A body the API does not accept: its error code, words and HTTP status. Raised from the
    parser, it is answered like every ApiError (portal.api.errors reads `error_code`)."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.error_code = code


def too_large() -> BodyRejected:
    limit = settings.API_JSON_MAX_BYTES // 1024
    return BodyRejected("too_large", TOO_LARGE % {"limit": limit}, 413)


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a dict, or BodyRejected saying what is wrong with it.

    1. Size: over the limit → 413 (nothing parsed).
    2. Depth, counted on the brackets outside strings before parsing, so that no nesting can
       reach the parser's recursion limit.
    3. Parse (strict: no NaN or Infinity; numbers finite), then the top level must be an object.
    4. Every key and text: no NUL, no unpaired surrogate.
    """
    if len(raw) > settings.API_JSON_MAX_BYTES:
        raise too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRejected("malformed_request", NOT_JSON) from exc
    if _depth(text) > settings.API_JSON_MAX_DEPTH:
        raise BodyRejected("invalid_body", TOO_DEEP)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except _NotFinite as exc:
        raise BodyRejected("invalid_body", NOT_FINITE) from exc
    except (ValueError, RecursionError) as exc:
        raise BodyRejected("malformed_request", NOT_JSON) from exc
    if not isinstance(value, dict):
        raise BodyRejected("invalid_body", NOT_AN_OBJECT)
    if not _texts_clean(value):
        raise BodyRejected("invalid_body", BAD_TEXT)
    return value


def _depth(text: str) -> int:
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


def _texts_clean(value: Any) -> bool:
    """No NUL and no unpaired surrogate in any key or text (depth is already bounded)."""
    if isinstance(value, str):
        return "\x00" not in value and _encodable(value)
    if isinstance(value, dict):
        return all(_texts_clean(k) and _texts_clean(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_texts_clean(v) for v in value)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Where portal.middleware.ApiBodyMiddleware leaves the body it has already parsed and checked.
PARSED_BODY = "_guardian_json_body"


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the bounds above; errors are the API's JSON errors. A body the
    middleware has already parsed and checked is taken from the request, not parsed again."""

    def parse(self, stream, media_type=None, parser_context=None) -> dict[str, Any]:
        request = getattr((parser_context or {}).get("request"), "_request", None)
        parsed = getattr(request, PARSED_BODY, None)
        if parsed is not None:
            return parsed
        raw = stream.read(settings.API_JSON_MAX_BYTES + 1) if stream is not None else b""
        return json_object(raw)
