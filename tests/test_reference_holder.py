"""The holder protocol (signing, ids, client) and the reference holder, run as a real process.

No Django here: the reference holder is a standalone stdlib service, and these tests talk to it
over HTTP only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # without pytest-django nobody puts the project root on sys.path
    sys.path.insert(0, str(ROOT))

from biometrics.holder_protocol import (  # noqa: E402
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HolderClient,
    HolderRejected,
    HolderUnavailable,
    parse_subject,
    sign,
    signed_headers,
    verify,
)

SECRET = "correct horse battery staple"
MARKER = 0.123456789  # a distinctive embedding value that must never reach the log


def new_id() -> str:
    return str(uuid.uuid4())


def embedding(seed: float = 0.0) -> list[float]:
    return [MARKER + seed + i / 1000 for i in range(128)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Running the holder as a separate process
# --------------------------------------------------------------------------------------------


class HolderProcess:
    def __init__(self, db: Path, log: Path, *extra: str, secret: str = SECRET) -> None:
        self.db = db
        self.log = log
        self.extra = extra
        self.secret = secret
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, secret: str | None = None, timeout: float = 5.0) -> HolderClient:
        return HolderClient(self.url, self.secret if secret is None else secret, timeout)

    def start(self) -> HolderProcess:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDER_")}
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "biometrics.reference_holder",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--secret",
            self.secret,
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"holder exited with {self.proc.returncode}:\n{self.log_text()}")
            status, body = raw_request(self, "GET", "/health", signed=False)
            if status == 200 and body == {"ok": True}:
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"holder did not become healthy:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_holder(tmp_path: Path, *extra: str, name: str = "holder"):
    holder = HolderProcess(tmp_path / f"{name}.sqlite3", tmp_path / f"{name}.log", *extra)
    holder.start()
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    with running_holder(tmp_path_factory.mktemp("holder")) as proc:
        yield proc


@pytest.fixture
def client(holder) -> HolderClient:
    return holder.client()


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def raw_request(
    holder: HolderProcess,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    signed: bool = True,
    secret: str = SECRET,
    now: float | None = None,
    sign_body: bytes | None = None,
    sign_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int | None, object]:
    """One request through plain urllib; returns (status, decoded JSON or text)."""
    all_headers = {"Content-Type": "application/json"}
    if signed:
        all_headers.update(
            signed_headers(
                secret,
                method,
                path if sign_path is None else sign_path,
                body if sign_body is None else sign_body,
                now=now,
            )
        )
    all_headers.update(headers or {})
    request = urllib.request.Request(
        holder.url + path,
        data=body if (body or method in ("PUT", "POST")) else None,
        headers=all_headers,
        method=method,
    )
    try:
        with _opener.open(request, timeout=5) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
        exc.close()
    except (urllib.error.URLError, OSError):
        return None, None
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode("utf-8", "replace")


def put_body(vector=None, model="dlib-resnet-v1") -> bytes:
    return json.dumps(
        {"embedding": embedding() if vector is None else vector, "model": model}
    ).encode()


# --------------------------------------------------------------------------------------------
# Signing (pure unit tests)
# --------------------------------------------------------------------------------------------


def test_sign_matches_the_documented_construction():
    body = b'{"embedding":[1,2,3]}'
    expected = hmac.new(
        SECRET.encode(), b"1700000000\nPUT\n/subjects?cursor=abc\n" + body, hashlib.sha256
    ).hexdigest()
    assert sign(SECRET, "1700000000", "put", "/subjects?cursor=abc", body) == expected
    assert verify(SECRET, "1700000000", "PUT", "/subjects?cursor=abc", body, expected, now=1.7e9)


def test_verify_rejects_every_altered_part():
    now = 1_700_000_000.0
    ts = str(int(now))
    sig = sign(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body")
    assert verify(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)
    assert verify(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig.upper(), now=now)
    assert not verify("other secret", ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)
    assert not verify(SECRET, ts, "GET", "/subjects/x?a=1", b"body", sig, now=now)
    assert not verify(SECRET, ts, "DELETE", "/subjects/x?a=2", b"body", sig, now=now)
    assert not verify(SECRET, ts, "DELETE", "/subjects/x", b"body", sig, now=now)
    assert not verify(SECRET, ts, "DELETE", "/subjects/x?a=1", b"", sig, now=now)
    assert not verify(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", sig[:-1], now=now)
    assert not verify(SECRET, ts, "DELETE", "/subjects/x?a=1", b"body", "", now=now)
    assert not verify("", ts, "DELETE", "/subjects/x?a=1", b"body", sig, now=now)


@pytest.mark.parametrize("bad_ts", ["", "abc", "1700000000.5", " 1700000000", "-1", "1e9", "١٢"])
def test_verify_rejects_non_integer_timestamps(bad_ts):
    sig = sign(SECRET, bad_ts, "GET", "/health", b"")
    assert not verify(SECRET, bad_ts, "GET", "/health", b"", sig, now=1_700_000_000)


@pytest.mark.parametrize(
    ("skew", "ok"),
    [(0, True), (MAX_SKEW_SECONDS, True), (-MAX_SKEW_SECONDS, True), (301, False), (-301, False)],
)
def test_verify_enforces_the_clock_skew_window(skew, ok):
    now = 1_700_000_000
    ts = str(now + skew)
    sig = sign(SECRET, ts, "GET", "/subjects", b"")
    assert verify(SECRET, ts, "GET", "/subjects", b"", sig, now=now) is ok


def test_signed_headers_use_the_current_time():
    headers = signed_headers(SECRET, "GET", "/subjects", b"")
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) <= 2
    assert verify(
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
            assert not verify(SECRET, ts, "PUT", "/p", bytes(changed), sig, now=1.7e9)


@settings(max_examples=200, deadline=None, database=None)
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_property_single_byte_change_breaks_verify(body, data):
    ts = "1700000000"
    sig = sign(SECRET, ts, "PUT", "/subjects/a/templates/b", body)
    assert verify(SECRET, ts, "PUT", "/subjects/a/templates/b", body, sig, now=1.7e9)
    index = data.draw(st.integers(0, len(body) - 1))
    new_byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    changed = bytearray(body)
    changed[index] = new_byte
    assert not verify(SECRET, ts, "PUT", "/subjects/a/templates/b", bytes(changed), sig, now=1.7e9)


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


# --------------------------------------------------------------------------------------------
# Client behaviour without a server
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", " ", "*", "all", "../x", "not-a-uuid"])
def test_client_refuses_invalid_ids_before_any_network_io(bad):
    # Nothing listens on this port: a ValueError (not HolderUnavailable) proves no I/O happened.
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    good = new_id()
    with pytest.raises(ValueError, match="subject"):
        client.put_template(bad, good, embedding(), "m")
    with pytest.raises(ValueError, match="template"):
        client.put_template(good, bad, embedding(), "m")
    with pytest.raises(ValueError, match="subject"):
        client.get_subject(bad)
    with pytest.raises(ValueError, match="subject"):
        client.delete_subject(bad)


def test_client_refuses_bad_embeddings_and_settings_locally():
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    with pytest.raises(ValueError, match="embedding"):
        client.put_template(new_id(), new_id(), [0.0] * 127, "m")
    with pytest.raises(ValueError, match="embedding"):
        client.put_template(new_id(), new_id(), [math.nan] + [0.0] * 127, "m")
    with pytest.raises(ValueError, match="model"):
        client.put_template(new_id(), new_id(), [0.0] * 128, "")
    with pytest.raises(ValueError, match="http"):
        HolderClient("ftp://example.org", SECRET)
    with pytest.raises(ValueError, match="secret"):
        HolderClient("http://127.0.0.1:1", "")
    assert SECRET not in repr(client)


def test_client_reports_connection_errors_as_unavailable():
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    with pytest.raises(HolderUnavailable) as info:
        client.delete_subject(new_id())
    assert info.value.status is None
    assert client.health() is False


# --------------------------------------------------------------------------------------------
# Against a running holder
# --------------------------------------------------------------------------------------------


def test_put_get_list_delete_round_trip(holder, client):
    subject, template, other = new_id(), new_id(), new_id()
    first = client.put_template(subject, template, embedding(), "dlib-resnet-v1")
    assert first["created"] is True
    assert (first["subject"], first["template"]) == (subject, template)
    again = client.put_template(subject, template, embedding(1.0), "dlib-resnet-v2")
    assert again["created"] is False
    client.put_template(subject, other, embedding(2.0), "dlib-resnet-v1")

    held = client.get_subject(subject.upper())  # ids are case-insensitive
    assert held["subject"] == subject
    by_id = {t["template"]: t for t in held["templates"]}
    assert set(by_id) == {template, other}
    assert by_id[template]["model"] == "dlib-resnet-v2"
    assert by_id[template]["embedding"] == pytest.approx(embedding(1.0))
    assert by_id[template]["stored_at"] == again["stored_at"]
    assert held["events"] == []

    subjects, _ = client.list_subjects(limit=1000)
    assert subject in subjects

    assert client.delete_subject(subject) == 2
    assert client.get_subject(subject) is None
    assert raw_request(holder, "GET", f"/subjects/{subject}") == (404, {"error": "not_found"})
    assert client.delete_subject(subject) == 0  # idempotent
    assert subject not in client.list_subjects(limit=1000)[0]


def test_events_are_held_listed_and_erased(holder, client):
    subject = new_id()
    status, body = raw_request(
        holder,
        "POST",
        "/events",
        json.dumps(
            {
                "subject": subject,
                "device": "gate-1",
                "purpose": "entry",
                "distance": 0.41,
                "at": "2024-03-01T08:00:00Z",
            }
        ).encode(),
    )
    assert status == 201, body
    client.post_event(subject, "till-2", "lunch", 0.38)
    held = client.get_subject(subject)
    assert held["templates"] == []
    assert [e["device"] for e in held["events"]] == ["gate-1", "till-2"]
    assert held["events"][0] == {
        "at": "2024-03-01T08:00:00.000000+00:00",
        "device": "gate-1",
        "purpose": "entry",
        "distance": 0.41,
    }
    assert subject in client.list_subjects(limit=1000)[0]
    client.put_template(subject, new_id(), embedding(), "m")
    assert client.delete_subject(subject) == 3
    assert client.get_subject(subject) is None


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"subject": "*", "device": "g", "purpose": "p", "distance": 0.1}, "bad_subject"),
        ({"subject": None, "device": "g", "purpose": "p", "distance": 0.1}, "bad_subject"),
        ({"device": "", "purpose": "p", "distance": 0.1}, "bad_device"),
        ({"device": "g", "purpose": "x" * 101, "distance": 0.1}, "bad_purpose"),
        ({"device": "g", "purpose": "p", "distance": "near"}, "bad_distance"),
        ({"device": "g", "purpose": "p", "distance": -1}, "bad_distance"),
        ({"device": "g", "purpose": "p", "distance": 0.1, "at": "yesterday"}, "bad_at"),
    ],
)
def test_bad_events_are_rejected(holder, event, error):
    event = {"subject": new_id(), **event}
    status, body = raw_request(holder, "POST", "/events", json.dumps(event).encode())
    assert (status, body["error"]) == (400, error)


def test_signature_failures_are_401_and_change_nothing(holder, client):
    subject = new_id()
    client.put_template(subject, new_id(), embedding(), "m")
    target = f"/subjects/{subject}"

    status, body = raw_request(holder, "DELETE", target, now=time.time() - 301)
    assert (status, body["error"]) == (401, "stale_request")
    status, body = raw_request(holder, "DELETE", target, now=time.time() + 301)
    assert (status, body["error"]) == (401, "stale_request")
    status, body = raw_request(holder, "DELETE", target, secret="wrong secret")
    assert (status, body["error"]) == (401, "bad_signature")
    status, body = raw_request(holder, "DELETE", target, signed=False)
    assert (status, body["error"]) == (401, "bad_signature")
    # Signed for another subject, sent for this one.
    status, body = raw_request(holder, "DELETE", target, sign_path=f"/subjects/{new_id()}")
    assert (status, body["error"]) == (401, "bad_signature")
    # Signed for another query string.
    status, body = raw_request(holder, "GET", "/subjects?limit=5", sign_path="/subjects?limit=6")
    assert (status, body["error"]) == (401, "bad_signature")
    # Tampered body: signed one embedding, sent another.
    tpl = new_id()
    status, body = raw_request(
        holder,
        "PUT",
        f"/subjects/{subject}/templates/{tpl}",
        put_body(embedding(5.0)),
        sign_body=put_body(),
    )
    assert (status, body["error"]) == (401, "bad_signature")
    # Garbage headers.
    status, body = raw_request(
        holder,
        "DELETE",
        target,
        signed=False,
        headers={TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "zz"},
    )
    assert (status, body["error"]) == (401, "bad_signature")

    held = client.get_subject(subject)
    assert held is not None
    assert len(held["templates"]) == 1
    assert tpl not in {t["template"] for t in held["templates"]}

    with pytest.raises(HolderRejected) as info:
        holder.client(secret="wrong secret").delete_subject(subject)
    assert info.value.status == 401
    assert info.value.error == "bad_signature"
    assert client.get_subject(subject) is not None


BAD_SUBJECT_SEGMENTS = ["", "%20", "*", "%2A", "all", "not-a-uuid", "%00", "..", "%2F"]


def test_malformed_subjects_are_400_on_every_method_and_delete_nothing(holder, client):
    bystanders = [new_id() for _ in range(3)]
    for subject in bystanders:
        client.put_template(subject, new_id(), embedding(), "m")
    valid = new_id()

    cases = [("DELETE", "/subjects"), ("PUT", "/subjects")]
    for segment in BAD_SUBJECT_SEGMENTS:
        cases += [
            ("GET", f"/subjects/{segment}"),
            ("DELETE", f"/subjects/{segment}"),
            ("PUT", f"/subjects/{segment}"),
            ("PUT", f"/subjects/{segment}/templates/{valid}"),
        ]
    cases.append(("DELETE", f"/subjects/{valid}%20"))
    cases.append(("DELETE", f"/subjects/%20{valid}"))
    for method, path in cases:
        body = put_body() if method == "PUT" else b""
        status, reply = raw_request(holder, method, path, body)
        assert (status, reply.get("error")) == (400, "bad_subject"), (method, path, reply)

    for segment in BAD_SUBJECT_SEGMENTS:
        path = f"/subjects/{bystanders[0]}/templates/{segment}"
        status, reply = raw_request(holder, "PUT", path, put_body())
        assert (status, reply.get("error")) == (400, "bad_template"), (path, reply)

    listed = set(client.list_subjects(limit=1000)[0])
    for subject in bystanders:
        assert subject in listed
        assert len(client.get_subject(subject)["templates"]) == 1


def test_unknown_paths_are_404_and_wrong_methods_405(holder):
    subject = new_id()
    for path in ["/", "/nope", "/subjectsx", f"/subjects/{subject}/photos"]:
        status, body = raw_request(holder, "GET", path)
        assert status == 404, (path, body)
    for method, path in [
        ("POST", f"/subjects/{subject}"),
        ("PATCH", f"/subjects/{subject}"),
        ("GET", f"/subjects/{subject}/templates/{new_id()}"),
        ("DELETE", f"/subjects/{subject}/templates/{new_id()}"),
        ("GET", "/events"),
        ("POST", "/subjects"),
        ("FROB", "/subjects"),
    ]:
        status, body = raw_request(holder, method, path)
        assert (status, body["error"]) == (405, "method_not_allowed"), (method, path)
    assert raw_request(holder, "POST", "/health", signed=False)[0] == 405


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (put_body([0.1] * 127), "bad_embedding"),
        (put_body([0.1] * 129), "bad_embedding"),
        (put_body([math.nan] + [0.1] * 127), "bad_embedding"),  # json.dumps writes NaN
        (put_body([0.1] * 127 + [math.inf]), "bad_embedding"),
        (b'{"model":"m","embedding":[' + b",".join([b"1e999"] * 128) + b"]}", "bad_embedding"),
        (b'{"model":"m","embedding":[' + b",".join([b"9" * 400] * 128) + b"]}", "bad_embedding"),
        (put_body(["0.1"] * 128), "bad_embedding"),
        (put_body([True] * 128), "bad_embedding"),
        (put_body([[0.1]] * 128), "bad_embedding"),
        (put_body("0.1,0.2"), "bad_embedding"),
        (json.dumps({"model": "m"}).encode(), "bad_embedding"),
        (put_body(model=""), "bad_model"),
        (put_body(model="   "), "bad_model"),
        (put_body(model="x" * 101), "bad_model"),
        (put_body(model=7), "bad_model"),
        (b"", "bad_json"),
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b"\xff\xfe\x00garbage", "bad_json"),
        (b"[" * 50_000, "bad_json"),
    ],
)
def test_bad_put_bodies_are_400(holder, body, error):
    subject = new_id()
    status, reply = raw_request(holder, "PUT", f"/subjects/{subject}/templates/{new_id()}", body)
    assert (status, reply["error"]) == (400, error)
    assert raw_request(holder, "GET", f"/subjects/{subject}")[0] == 404


def test_a_100_char_model_is_accepted(holder):
    path = f"/subjects/{new_id()}/templates/{new_id()}"
    assert raw_request(holder, "PUT", path, put_body(model="x" * 100))[0] == 201


def test_oversized_body_is_413(holder):
    subject = new_id()
    body = b'{"model":"m","embedding":[' + b"0.1," * (70 * 1024 // 4) + b"0.1]}"
    assert len(body) > 70 * 1024
    status, reply = raw_request(holder, "PUT", f"/subjects/{subject}/templates/{new_id()}", body)
    assert (status, reply["error"]) == (413, "too_large")
    assert raw_request(holder, "GET", f"/subjects/{subject}")[0] == 404


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "limit=1.5", "cursor=*"])
def test_bad_list_parameters_are_400(holder, query):
    status, body = raw_request(holder, "GET", f"/subjects?{query}")
    assert status == 400
    assert body["error"] in {"bad_limit", "bad_cursor"}


def test_concurrent_writers_do_not_fail(holder):
    errors: list[BaseException] = []
    subjects = [new_id() for _ in range(8)]

    def worker(subject: str) -> None:
        client = holder.client()
        try:
            for _ in range(6):
                client.put_template(subject, new_id(), embedding(), "m")
            client.delete_subject(subject)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in subjects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


def test_log_has_one_line_per_request_and_no_embedding_values(holder, client):
    subject = new_id()
    client.put_template(subject, new_id(), embedding(), "m")
    client.delete_subject(subject)
    time.sleep(0.1)
    log = holder.log_text()
    assert f"PUT /subjects/{subject}/templates/" in log
    assert f"DELETE /subjects/{subject} 200" in log
    assert str(MARKER)[:8] not in log
    assert "Traceback" not in log


# --------------------------------------------------------------------------------------------
# Dedicated processes
# --------------------------------------------------------------------------------------------


def test_pagination_returns_every_subject_exactly_once(tmp_path):
    with running_holder(tmp_path) as proc:
        client = proc.client()
        with_templates = [new_id() for _ in range(200)]
        events_only = [new_id() for _ in range(50)]
        for subject in with_templates:
            client.put_template(subject, new_id(), embedding(), "m")
        for subject in events_only:
            client.post_event(subject, "gate", "entry", 0.4)

        seen: list[str] = []
        pages: list[int] = []
        cursor = None
        while True:
            page, cursor = client.list_subjects(cursor, limit=100)
            pages.append(len(page))
            seen.extend(page)
            if cursor is None:
                break
            assert len(pages) < 10
        assert pages == [100, 100, 50]
        assert seen == sorted(seen)
        assert len(seen) == len(set(seen)) == 250
        assert set(seen) == set(with_templates) | set(events_only)

        # Default page size is 100; limits above 1000 are clamped, not refused.
        status, body = raw_request(proc, "GET", "/subjects")
        assert (status, len(body["subjects"])) == (200, 100)
        assert body["next_cursor"] == body["subjects"][-1]
        status, body = raw_request(proc, "GET", "/subjects?limit=5000")
        assert (status, len(body["subjects"]), body["next_cursor"]) == (200, 250, None)
        assert list(client.iter_subjects(limit=64)) == seen


def test_fail_first_makes_the_client_see_a_flaky_holder(tmp_path):
    with running_holder(tmp_path, "--fail-first", "2") as proc:  # /health is not counted
        client = proc.client()
        subject, template = new_id(), new_id()
        for _ in range(2):
            with pytest.raises(HolderUnavailable) as info:
                client.put_template(subject, template, embedding(), "m")
            assert info.value.status == 500
        assert client.put_template(subject, template, embedding(), "m")["created"] is True
        assert client.get_subject(subject)["templates"][0]["template"] == template


def test_data_survives_a_restart(tmp_path):
    holder = HolderProcess(tmp_path / "keep.sqlite3", tmp_path / "keep.log").start()
    try:
        client = holder.client()
        kept, erased, template = new_id(), new_id(), new_id()
        client.put_template(kept, template, embedding(), "m")
        client.post_event(kept, "gate", "entry", 0.3)
        client.put_template(erased, new_id(), embedding(), "m")
        assert client.delete_subject(erased) == 1
    finally:
        holder.stop()
    assert holder.proc.returncode == 0  # SIGTERM is a clean shutdown

    holder.start()
    try:
        client = holder.client()
        held = client.get_subject(kept)
        assert [t["template"] for t in held["templates"]] == [template]
        assert held["templates"][0]["embedding"] == pytest.approx(embedding())
        assert len(held["events"]) == 1
        assert client.get_subject(erased) is None
    finally:
        holder.stop()
