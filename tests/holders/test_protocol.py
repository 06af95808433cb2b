"""The shared holder contract: request signing and subject ids (pure unit tests, no server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biometrics.holders.protocol import (
    BAD_SIGNATURE,
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    STALE_REQUEST,
    TIMESTAMP_HEADER,
    check_signature,
    parse_subject,
    sign,
    signed_headers,
)

from .harness import SECRET


def valid(*args, **kwargs) -> bool:
    """check_signature's verdict as a yes/no; the tests below that need the reason assert it."""
    return check_signature(*args, **kwargs) is None


# --------------------------------------------------------------------------------------------
# Signing (pure unit tests)
# --------------------------------------------------------------------------------------------


def test_sign_matches_the_documented_construction():
    body = b'{"embedding":[1,2,3]}'
    expected = hmac.new(
        SECRET.encode(), b"1700000000\nPUT\n/subjects?cursor=abc\n" + body, hashlib.sha256
    ).hexdigest()
    assert sign(SECRET, "1700000000", "put", "/subjects?cursor=abc", body) == expected
    assert valid(SECRET, "1700000000", "PUT", "/subjects?cursor=abc", body, expected, now=1.7e9)


def test_verify_rejects_every_altered_part():
    now = 1_700_000_000.0
    ts = str(int(now))
    sig = sign(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body")
    assert valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)
    assert valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig.upper(), now=now)
    assert not valid("other secret", ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)
    assert not valid(SECRET, ts, "GET", "/subjects/x?a=1", b"body", sig, now=now)
    assert not valid(SECRET, ts, "DELETE", "/subjects/x?a=2", b"body", sig, now=now)
    assert not valid(SECRET, ts, "DELETE", "/subjects/x", b"body", sig, now=now)
    assert not valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"", sig, now=now)
    assert not valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig[:-1], now=now)
    assert not valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", "", now=now)
    assert not valid("", ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)


@pytest.mark.parametrize("bad_ts", ["", "abc", "1700000000.5", " 1700000000", "-1", "1e9", "١٢"])
def test_verify_rejects_non_integer_timestamps(bad_ts):
    sig = sign(SECRET, bad_ts, "GET", "/health", b"")
    assert check_signature(SECRET, bad_ts, "GET", "/health", b"", sig, now=1_700_000_000) == (
        BAD_SIGNATURE
    )


@pytest.mark.parametrize(
    ("skew", "ok"),
    [(0, True), (MAX_SKEW_SECONDS, True), (-MAX_SKEW_SECONDS, True), (301, False), (-301, False)],
)
def test_verify_enforces_the_clock_skew_window(skew, ok):
    now = 1_700_000_000
    ts = str(now + skew)
    sig = sign(SECRET, ts, "GET", "/subjects", b"")
    reason = check_signature(SECRET, ts, "GET", "/subjects", b"", sig, now=now)
    assert reason == (None if ok else STALE_REQUEST)


def test_signed_headers_use_the_current_time():
    headers = signed_headers(SECRET, "GET", "/subjects", b"")
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) <= 2
    assert valid(
        SECRET, headers[TIMESTAMP_HEADER], "GET", "/subjects", b"", headers[SIGNATURE_HEADER]
    )


def test_every_single_byte_change_in_a_body_breaks_the_signature():
    body = json.dumps({"embedding": [0.5] * 8, "model": "m"}).encode()
    ts = "1700000000"
    sig = sign(SECRET, ts, "PUT", "/p", body)
    for index in range(len(body)):
        for delta in (1, 0x80):
            changed = bytearray(body)
            changed[index] = (changed[index] + delta) % 256
            assert not valid(SECRET, ts, "PUT", "/p", bytes(changed), sig, now=1.7e9)


@settings(max_examples=200, deadline=None, database=None)
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_property_single_byte_change_breaks_verify(body, data):
    ts = "1700000000"
    sig = sign(SECRET, ts, "PUT", "/subjects/a/templates/b", body)
    assert valid(SECRET, ts, "PUT", "/subjects/a/templates/b", body, sig, now=1.7e9)
    index = data.draw(st.integers(0, len(body) - 1))
    new_byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    changed = bytearray(body)
    changed[index] = new_byte
    assert not valid(SECRET, ts, "PUT", "/subjects/a/templates/b", bytes(changed), sig, now=1.7e9)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("0f8fad5bd9cb469fa16570867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("", None),
        (" ", None),
        ("*", None),
        ("all", None),
        ("%", None),
        (" 0f8fad5b-d9cb-469f-a165-70867728950e", None),
        ("0f8fad5b-d9cb-469f-a165-70867728950e\n", None),
        ("{0f8fad5b-d9cb-469f-a165-70867728950e}", None),
        ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", None),
        ("0f8fad5b-d9cb-469f-a165-70867728950", None),
        ("not-a-uuid", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_subject(value, expected):
    assert parse_subject(value) == expected
