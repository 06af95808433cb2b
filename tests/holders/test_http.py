"""The reference holder over HTTP, through the portal's client and through raw requests."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from biometrics.holders.protocol import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HolderRejected,
)

from .harness import MARKER, embedding, new_id, post_event, put_body, raw_request


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
    post_event(holder, subject, "till-2", "lunch", 0.38)
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
