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
    KEY_HEADER,
    MAX_AGE_SECONDS,
    MAX_FUTURE_SECONDS,
    NONCE_HEADER,
    REPLAYED_REQUEST,
    SIGNATURE_HEADER,
    STALE_REQUEST,
    TIMESTAMP_HEADER,
    NonceCache,
    check_signature,
    key_id,
    parse_subject,
    sign,
    signed_headers,
)

from .harness import SECRET

NONCE = "0123456789abcdef0123456789abcdef"


def valid(secret, ts, method, path, body, sig, now=None, nonce=NONCE) -> bool:
    """check_signature's verdict as a yes/no; the tests below that need the reason assert it."""
    return check_signature(secret, ts, nonce, method, path, body, sig, now=now) is None


# --------------------------------------------------------------------------------------------
# Signing (pure unit tests)
# --------------------------------------------------------------------------------------------


def test_sign_matches_the_documented_construction():
    body = b'{"embedding":[1,2,3]}'
    expected = hmac.new(
        SECRET.encode(),
        b"1700000000\n" + NONCE.encode() + b"\nPUT\n/subjects?cursor=abc\n" + body,
        hashlib.sha256,
    ).hexdigest()
    assert sign(SECRET, "1700000000", NONCE, "put", "/subjects?cursor=abc", body) == expected
    assert valid(SECRET, "1700000000", "PUT", "/subjects?cursor=abc", body, expected, now=1.7e9)


def test_the_documented_worked_example():
    """docs/holder-protocol.md's example, byte for byte."""
    nonce = "5f0c8a1e2b3d4c6f8091a2b3c4d5e6f7"
    path = "/subjects/3f2b8c1e-9a4d-4e6b-8c2a-1d5e7f9a0b3c"
    assert key_id("example-secret") == "596b2cb1143c3abd"
    assert sign("example-secret", "1767225600", nonce, "DELETE", path, b"") == (
        "850d6ce0507021ddd9e1b1f72a7fd4ca80221138589e68e6802ba7b487022148"
    )


def test_verify_rejects_every_altered_part():
    now = 1_700_000_000.0
    ts = str(int(now))
    sig = sign(SECRET, ts, NONCE, "DELETE", "/subjects/x?a=1", b"body")
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
    other_nonce = "f" * 32
    assert not valid(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig, now, other_nonce)


@pytest.mark.parametrize("bad_nonce", ["", "abc", "G" * 32, "0" * 31, "0" * 33, None])
def test_verify_rejects_malformed_nonces(bad_nonce):
    sig = sign(SECRET, "1700000000", bad_nonce or "", "GET", "/subjects", b"")
    reason = check_signature(
        SECRET, "1700000000", bad_nonce, "GET", "/subjects", b"", sig, now=1.7e9
    )
    assert reason == BAD_SIGNATURE


@pytest.mark.parametrize("bad_ts", ["", "abc", "1700000000.5", " 1700000000", "-1", "1e9", "١٢"])
def test_verify_rejects_non_integer_timestamps(bad_ts):
    sig = sign(SECRET, bad_ts, NONCE, "GET", "/health", b"")
    assert check_signature(SECRET, bad_ts, NONCE, "GET", "/health", b"", sig, now=1.7e9) == (
        BAD_SIGNATURE
    )


@pytest.mark.parametrize(
    ("skew", "ok"),
    [
        (0, True),
        (-MAX_AGE_SECONDS, True),
        (MAX_FUTURE_SECONDS, True),
        (-MAX_AGE_SECONDS - 1, False),
        (MAX_FUTURE_SECONDS + 1, False),  # the future is refused beyond a small skew
        (290, False),
    ],
)
def test_verify_enforces_the_time_window(skew, ok):
    now = 1_700_000_000
    ts = str(now + skew)
    sig = sign(SECRET, ts, NONCE, "GET", "/subjects", b"")
    reason = check_signature(SECRET, ts, NONCE, "GET", "/subjects", b"", sig, now=now)
    assert reason == (None if ok else STALE_REQUEST)


def test_signed_headers_use_the_current_time_a_fresh_nonce_and_the_key_id():
    headers = signed_headers(SECRET, "GET", "/subjects", b"")
    again = signed_headers(SECRET, "GET", "/subjects", b"")
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) <= 2
    assert headers[NONCE_HEADER] != again[NONCE_HEADER]
    assert headers[KEY_HEADER] == key_id(SECRET) != key_id("another secret")
    assert SECRET not in json.dumps(headers)
    assert valid(
        SECRET,
        headers[TIMESTAMP_HEADER],
        "GET",
        "/subjects",
        b"",
        headers[SIGNATURE_HEADER],
        nonce=headers[NONCE_HEADER],
    )


def test_a_nonce_is_accepted_once_within_the_window():
    cache = NonceCache(not_before=1_700_000_000)
    ts = "1700000100"
    assert cache.accept("k", NONCE, ts, now=1_700_000_100) is None
    assert cache.accept("k", NONCE, ts, now=1_700_000_101) == REPLAYED_REQUEST
    assert cache.accept("other key", NONCE, ts, now=1_700_000_101) is None
    # Remembered until its timestamp is out of the window, then forgotten (it would be stale).
    later = 1_700_000_101 + MAX_AGE_SECONDS + MAX_FUTURE_SECONDS + 1
    assert cache.accept("k", "e" * 32, str(int(later)), now=later) is None
    assert len(cache) == 1


def test_a_nonce_cache_refuses_what_was_signed_before_it_started():
    """After a restart the nonces seen before are forgotten: nothing signed before counts."""
    cache = NonceCache(not_before=1_700_000_000)
    assert cache.accept("k", NONCE, "1699999999", now=1_700_000_000) == STALE_REQUEST


def test_every_single_byte_change_in_a_body_breaks_the_signature():
    body = json.dumps({"embedding": [0.5] * 8, "model": "m"}).encode()
    ts = "1700000000"
    sig = sign(SECRET, ts, NONCE, "PUT", "/p", body)
    for index in range(len(body)):
        for delta in (1, 0x80):
            changed = bytearray(body)
            changed[index] = (changed[index] + delta) % 256
            assert not valid(SECRET, ts, "PUT", "/p", bytes(changed), sig, now=1.7e9)


@settings(max_examples=200, deadline=None, database=None)
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_property_single_byte_change_breaks_verify(body, data):
    ts = "1700000000"
    sig = sign(SECRET, ts, NONCE, "PUT", "/subjects/a/templates/b", body)
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
