"""Protocol 2 on the reference holder: no request plays twice, an erased subject stays erased,
tenants never see each other, batch erasure names its subjects, connections are kept alive."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from biometrics.holders.client import HolderClient
from biometrics.holders.protocol import (
    MAX_BATCH_SUBJECTS,
    MAX_FUTURE_SECONDS,
    HolderRejected,
    signed_headers,
)

from .harness import ROOT, SECRET, embedding, new_id, put_body, raw_request, running_holder


def signed(method: str, path: str, body: bytes = b"", secret: str = SECRET) -> dict[str, str]:
    """A signed request's headers, made now and kept: sending them twice is a replay."""
    return signed_headers(secret, method, path, body)


def send(holder, method, path, headers, body=b""):
    return raw_request(holder, method, path, body, signed=False, headers=headers)


def body_made(at: datetime) -> bytes:
    return json.dumps(
        {"embedding": embedding(), "model": "m", "created_at": at.isoformat()}
    ).encode()


def test_a_replayed_request_is_refused_and_changes_nothing(holder, client):
    subject, template = new_id(), new_id()
    path = f"/subjects/{subject}/templates/{template}"
    headers = signed("PUT", path, put_body())
    assert send(holder, "PUT", path, headers, put_body())[0] == 201
    status, reply = send(holder, "PUT", path, headers, put_body())
    assert (status, reply["error"]) == (401, "replayed_request")
    delete = signed("DELETE", f"/subjects/{subject}")
    assert send(holder, "DELETE", f"/subjects/{subject}", delete)[0] == 200
    assert send(holder, "DELETE", f"/subjects/{subject}", delete)[1]["error"] == "replayed_request"


def test_a_put_replayed_after_the_erasure_does_not_bring_the_template_back(holder, client):
    """The attack of the review: PUT, DELETE, the same PUT again → the template was back."""
    subject, template = new_id(), new_id()
    path = f"/subjects/{subject}/templates/{template}"
    captured = signed("PUT", path, put_body())
    assert send(holder, "PUT", path, captured, put_body())[0] == 201
    assert client.delete_subject(subject) == 1
    status, reply = send(holder, "PUT", path, captured, put_body())
    assert (status, reply["error"]) == (401, "replayed_request")
    assert client.get_subject(subject) is None


def test_a_copy_made_before_the_erasure_never_arrives_after_it(holder, client):
    """A PUT withheld (or a push still in flight) and delivered after the DELETE: the subject's
    tombstone refuses it, whether the copy says when it was made or only when it was signed."""
    subject = new_id()
    client.put_template(subject, new_id(), embedding(), "m")
    withheld_path = f"/subjects/{subject}/templates/{new_id()}"
    withheld = signed("PUT", withheld_path, put_body())  # signed now, before the erasure
    time.sleep(1.1)
    assert client.delete_subject(subject) == 1

    status, reply = send(holder, "PUT", withheld_path, withheld, put_body())
    assert (status, reply["error"]) == (410, "subject_erased")
    made_before = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(HolderRejected) as info:
        client.put_template(subject, new_id(), embedding(), "m", created_at=made_before)
    assert (info.value.status, info.value.error) == (410, "subject_erased")
    status, reply = raw_request(
        holder,
        "POST",
        "/events",
        json.dumps(
            {
                "subject": subject,
                "device": "g",
                "purpose": "p",
                "distance": 0.3,
                "at": made_before.isoformat(),
            }
        ).encode(),
    )
    assert (status, reply["error"]) == (410, "subject_erased")
    assert client.get_subject(subject) is None

    # A template the portal makes after the erasure (the child enrolled again) is a new copy.
    time.sleep(1.1)
    again = client.put_template(subject, new_id(), embedding(), "m", created_at=datetime.now(UTC))
    assert again["created"] is True


@pytest.mark.parametrize("ahead", [MAX_FUTURE_SECONDS + 2, 290])
def test_a_request_from_the_future_is_refused(holder, ahead):
    status, reply = raw_request(holder, "GET", "/subjects", now=time.time() + ahead)
    assert (status, reply["error"]) == (401, "stale_request")
    assert raw_request(holder, "GET", "/subjects", now=time.time() + 5)[0] == 200


def test_requests_signed_before_a_restart_are_refused_after_it(tmp_path):
    """A restarted holder has forgotten the nonces it saw, so it takes nothing signed before."""
    with running_holder(tmp_path) as proc:
        path = f"/subjects/{new_id()}"
        early = signed("DELETE", path)
        time.sleep(1.1)
        proc.stop()
        proc.start()
        status, reply = send(proc, "DELETE", path, early)
        assert (status, reply["error"]) == (401, "stale_request")
        assert raw_request(proc, "DELETE", path)[0] == 200


def test_batch_erasure_names_its_subjects_and_never_means_all(holder, client):
    kept, gone = new_id(), [new_id() for _ in range(3)]
    for subject in [kept, *gone]:
        client.put_template(subject, new_id(), embedding(), "m")
    empty = new_id()
    assert client.delete_subjects([*gone, empty]) == {**dict.fromkeys(gone, 1), empty: 0}
    assert client.get_subject(kept) is not None
    assert all(client.get_subject(s) is None for s in gone)
    for body, error in [
        ({"subjects": []}, "bad_subjects"),
        ({"subjects": "all"}, "bad_subjects"),
        ({}, "bad_subjects"),
        ({"subjects": ["*"]}, "bad_subject"),
        ({"subjects": [kept, "all"]}, "bad_subject"),
        ({"subjects": [new_id() for _ in range(MAX_BATCH_SUBJECTS + 1)]}, "bad_subjects"),
    ]:
        status, reply = raw_request(holder, "POST", "/erasures", json.dumps(body).encode())
        assert (status, reply["error"]) == (400, error), body
    assert client.get_subject(kept) is not None
    with pytest.raises(ValueError, match="at least one"):
        client.delete_subjects([])


def test_tenants_of_one_holder_never_see_each_other(tmp_path):
    (tmp_path / "a.secret").write_text("school-a-secret")
    (tmp_path / "b.secret").write_text("school-b-secret")
    with running_holder(
        tmp_path,
        "--tenant",
        f"school-a={tmp_path / 'a.secret'}",
        "--tenant",
        f"school-b={tmp_path / 'b.secret'}",
        name="shared",
    ) as proc:
        a = HolderClient(proc.url, "school-a-secret")
        b = HolderClient(proc.url, "school-b-secret")
        child_a, child_b = new_id(), new_id()
        a.put_template(child_a, new_id(), embedding(), "m")
        b.put_template(child_b, new_id(), embedding(), "m")
        assert list(a.iter_subjects()) == [child_a]
        assert list(b.iter_subjects()) == [child_b]
        assert b.get_subject(child_a) is None
        assert b.delete_subject(child_a) == 0  # erases nothing of school A's
        assert b.delete_subjects([child_a]) == {child_a: 0}
        assert a.get_subject(child_a) is not None
        # School B's tombstone for that id does not stop school A either.
        a.put_template(child_a, new_id(), embedding(), "m")
        assert len(a.get_subject(child_a)["templates"]) == 2
        # An unknown key is refused like a wrong signature.
        with pytest.raises(HolderRejected) as info:
            HolderClient(proc.url, "nobody's secret").list_subjects()
        assert (info.value.status, info.value.error) == (401, "bad_signature")
        assert " school-a GET /subjects" in proc.log_text()


def test_two_tenants_with_one_secret_are_refused_at_start(tmp_path):
    (tmp_path / "same").write_text("shared-secret")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "biometrics.reference_holder",
            "--db",
            str(tmp_path / "x.db"),
            "--tenant",
            f"a={tmp_path / 'same'}",
            "--tenant",
            f"b={tmp_path / 'same'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "share a secret" in result.stderr


def test_the_client_keeps_one_connection_and_survives_its_closing(tmp_path):
    with running_holder(tmp_path) as proc:
        client = proc.client()
        subject = new_id()
        client.put_template(subject, new_id(), embedding(), "m")
        sock = client._conn.sock
        for _ in range(20):
            client.get_subject(subject)
        assert client._conn.sock is sock  # twenty requests, one connection
        proc.stop()
        proc.start(keep_port=True)  # the connection is gone: the client reconnects, signs anew
        assert client.get_subject(subject) is not None
        assert client._conn.sock is not sock
