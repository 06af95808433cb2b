"""Every copy is reached, and the erasure proves it when it runs: the child's downloads go with
it, its former face is probed against the live match index before the key is destroyed, the
destroyed key's bytes are gone from the key store's files, and one school's reconciliation
never touches another school's children on a shared holder."""

import uuid

import pytest
from django.db import connections

from biometrics.crypto import ShredFailed, child_key_get_or_create, child_keys_destroy
from biometrics.erasure import erasure_step_run
from biometrics.models import ChildKey, FaceTemplate, Holder
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.retention import retention_run
from biometrics.services import template_create
from portal.exports import export_build, export_request
from portal.models import Export

from .factories import SchoolFactory, StudentFactory, grant, guardian, link
from .factories import purpose_with_notice as make_purpose
from .processes import start_holder
from .test_erasure import run_all, withdraw


def test_the_childs_downloads_are_erased_with_it_and_named_in_the_receipt(
    held_child, purposes, parent_a, api_a, media_dir
):
    export = export_build(export_id=export_request(student=held_child, guardian=parent_a).pk)
    assert export.status == "ready"
    sealed = media_dir / export.storage_name
    assert sealed.exists()
    assert api_a.get(f"/api/v1/exports/{export.pk}/download/").status_code == 200

    erasure = run_all(withdraw(held_child, purposes, parent_a))

    assert erasure.status == "verified"
    assert not Export.objects.filter(student=held_child).exists()
    assert not sealed.exists()
    assert api_a.get(f"/api/v1/exports/{export.pk}/download/").status_code == 404  # not a 500
    step = erasure.steps.get(kind="exports")
    assert (step.system, step.status, step.items_erased) == ("Parent downloads", "verified", 1)
    receipt = signed_receipt(erasure)
    assert receipt_verify(receipt)
    (downloads,) = [s for s in receipt["systems"] if s["kind"] == "exports"]
    assert downloads["items_erased"] == 1
    assert downloads["erased"] == ["download packages and their sealed files"]


def test_an_export_built_while_its_child_is_erased_leaves_nothing(
    held_child, purposes, parent_a, media_dir
):
    export = export_request(student=held_child, guardian=parent_a)
    erasure = withdraw(held_child, purposes, parent_a)
    assert export_build(export_id=export.pk).status == "pending"  # refused: no new copy
    assert Export.objects.get(pk=export.pk).status == "failed"
    run_all(erasure)
    assert not Export.objects.filter(pk=export.pk).exists()
    assert export_build(export_id=export.pk) is None  # a late task finds nothing
    assert not list(media_dir.rglob("*.gvz"))


def test_the_database_step_fails_while_the_former_face_still_matches_the_child(
    held_child, purposes, parent_a, monkeypatch
):
    """The probe is a real check: if the match index still found the child, the step is not
    verified and the key is not destroyed."""
    from biometrics.erasure import probe

    erasure = withdraw(held_child, purposes, parent_a)
    real = probe.children_within
    monkeypatch.setattr(
        probe,
        "children_within",
        lambda index, face, tolerance: {
            held_child.pk: 0.0,
            **real(index, face, tolerance=tolerance),
        },
    )
    step = erasure_step_run(step_id=erasure.steps.get(kind="database").pk)
    assert step.status == "pending"
    assert step.last_error == "StepFailed: the former face still matches the child"
    assert erasure.steps.get(kind="key").status == "pending"
    assert ChildKey.objects.filter(student_id=held_child.pk, wrapped_key__isnull=False).exists()


def test_the_probe_reports_lookalikes_without_counting_them_as_the_child(
    held_child, child_b, purposes, parent_a
):
    """Another child with (nearly) the same face stays in the index; the child does not."""
    from biometrics.selectors import template_embedding

    face = template_embedding(FaceTemplate.objects.get(student=held_child))
    template_create(student=child_b, photo=None, embedding=face + 0.001)
    erasure = run_all(withdraw(held_child, purposes, parent_a))
    probe = erasure.steps.get(kind="database").proof["match_index_probe"]
    assert probe["templates_probed"] == 1
    assert probe["match_index_templates"] == 1  # child B's
    assert probe["matches_to_the_child"] == 0
    assert probe["other_children_within_tolerance"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_destroyed_key_is_gone_from_the_key_stores_file():
    """Read the key store's raw SQLite file (and its write-ahead log) for the destroyed
    wrapped key's bytes: secure_delete and the checkpoint leave none behind."""
    keys = connections["keys"]
    if keys.vendor != "sqlite":
        pytest.skip("the PostgreSQL test below reads the pages")
    student = StudentFactory(school=SchoolFactory(slug="shred"))
    child_key_get_or_create(student)
    wrapped = bytes(ChildKey.objects.get(student_id=student.pk).wrapped_key)
    path = keys.settings_dict["NAME"]

    def on_disk() -> bytes:
        data = b""
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as handle:
                    data += handle.read()
            except FileNotFoundError:
                pass
        return data

    with keys.cursor() as cursor:  # as a build might default: off
        cursor.execute("PRAGMA secure_delete=OFF")
    assert wrapped in on_disk()
    assert child_keys_destroy([student.pk]) == {student.pk}
    with keys.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete")
        assert cursor.fetchone()[0] == 1  # set explicitly, and checked, by the destruction
    assert wrapped not in on_disk()
    assert wrapped[3:19] not in on_disk()  # not even the nonce and the start of the key


@pytest.mark.django_db(transaction=True)
def test_a_destroyed_key_is_gone_from_the_key_tables_pages_on_postgresql():
    """PostgreSQL keeps the old row version (the key in it) until the table is vacuumed: the
    destruction rewrites the key table, and no page of it holds the bytes any more."""
    keys = connections["keys"]
    if keys.vendor != "postgresql":
        pytest.skip("PostgreSQL only (SQLite's file is read above)")
    with keys.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        except Exception:
            pytest.skip("needs the pageinspect extension (a superuser)")
    student = StudentFactory(school=SchoolFactory(slug="shred-pg"))
    child_key_get_or_create(student)
    wrapped = bytes(ChildKey.objects.get(student_id=student.pk).wrapped_key)
    table = ChildKey._meta.db_table

    def pages() -> bytes:
        with keys.cursor() as cursor:
            cursor.execute(
                "SELECT pg_relation_size(%s) / current_setting('block_size')::int", [table]
            )
            (blocks,) = cursor.fetchone()
            data = b""
            for block in range(blocks):
                cursor.execute("SELECT get_raw_page(%s, %s)", [table, block])
                data += bytes(cursor.fetchone()[0])
        return data

    assert wrapped in pages()
    assert _destroyed_as_a_step_would(student.pk) == {student.pk}
    assert wrapped not in pages()

    # A session that began before the destruction may still see the key's old row version:
    # VACUUM FULL keeps it, so the destruction says it could not shred (and the erasure step
    # retries); once that session ends, the retry leaves no page with the key.
    other = StudentFactory(school=student.school)
    child_key_get_or_create(other)
    wrapped = bytes(ChildKey.objects.get(student_id=other.pk).wrapped_key)
    reader = keys.get_new_connection(keys.get_connection_params())
    try:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1").fetchone()  # its first query takes the snapshot it holds
        with pytest.raises(ShredFailed, match="still run"):
            child_keys_destroy([other.pk])
        assert wrapped in pages()
    finally:
        reader.close()
    _destroyed_as_a_step_would(other.pk)  # destroyed already: the retry shreds the files
    assert wrapped not in pages()


def _destroyed_as_a_step_would(student_id, tries: int = 10) -> set:
    """child_keys_destroy, tried again as the erasure step is when it could not shred yet (a
    session of the test database's own, autovacuum's say, may hold an old snapshot)."""
    destroyed: set = set()
    for _ in range(tries - 1):
        try:
            return destroyed | child_keys_destroy([student_id])
        except ShredFailed:
            destroyed.add(student_id)
    return destroyed | child_keys_destroy([student_id])


def test_reconciling_one_school_leaves_another_schools_children_on_a_shared_holder(
    tmp_path, purposes, child_a, parent_a
):
    """Two schools, one holder service: each school's key is its tenant there, so the
    reconciliation of school B lists (and may erase) only school B's subjects."""
    school_a = child_a.school
    school_b = SchoolFactory(slug="school-b", name="School B")
    purpose_b = make_purpose(school_b)
    parent_b = guardian("parent.b2@example.com")
    child_b = StudentFactory(school=school_b, name="Child B")
    link(parent_b, child_b)
    grant(child_b, purpose_b, parent_b)
    proc = start_holder(tmp_path, tenants={"a": "secret-of-school-a", "b": "secret-of-school-b"})
    try:
        Holder.objects.create(
            school=school_a, name="Vendor", base_url=proc.info["url"], secret="secret-of-school-a"
        )
        Holder.objects.create(
            school=school_b, name="Vendor", base_url=proc.info["url"], secret="secret-of-school-b"
        )
        on_a, on_b = proc.info["clients"]["a"], proc.info["clients"]["b"]
        stray_b = str(uuid.uuid4())
        on_a.put_template(str(child_a.subject_id), str(uuid.uuid4()), [0.1] * 128, "m")
        on_b.put_template(str(child_b.subject_id), str(uuid.uuid4()), [0.1] * 128, "m")
        on_b.put_template(stray_b, str(uuid.uuid4()), [0.1] * 128, "m")

        run = retention_run("reconcile")

        assert on_a.get_subject(str(child_a.subject_id)) is not None  # school A's child stays
        assert on_b.get_subject(str(child_b.subject_id)) is not None  # consented
        assert on_b.get_subject(stray_b) is None  # school B's stray copy goes
        assert run.counts["subjects_checked"] == 3
        assert run.counts["unknown_subjects_erased"] == 1
    finally:
        proc.stop()


def test_two_schools_configured_with_one_key_still_leave_each_others_children(
    holder_proc, school, child_a, purposes
):
    """A misconfiguration (both schools on one tenant): the portal knows the subject belongs
    to another school's child and leaves it."""
    school_b = SchoolFactory(slug="school-b", name="School B")
    for s in (school, school_b):
        Holder.objects.create(
            school=s,
            name="Shared",
            base_url=holder_proc.info["url"],
            secret=holder_proc.info["secret"],
        )
    client = holder_proc.info["client"]
    client.put_template(str(child_a.subject_id), str(uuid.uuid4()), [0.1] * 128, "m")
    run = retention_run("reconcile")
    assert client.get_subject(str(child_a.subject_id)) is not None
    assert run.counts["other_schools_subjects_left"] == 1  # seen by school B's pass


def test_the_probe_sees_the_rows_there_are_now_whatever_it_cached(school, child_a, child_b):
    """A worker keeps the faces it decrypted between probes; the index it probes still has
    exactly the template rows of now: new ones added, deleted ones gone."""
    import numpy as np

    from biometrics.erasure.probe import live_index
    from biometrics.matching import match_index_for

    first = template_create(student=child_a, photo=None, embedding=np.full(128, 0.05))
    assert list(live_index(school.pk).template_ids) == [first.pk]
    second = template_create(student=child_b, photo=None, embedding=np.full(128, 0.07))
    first.delete()
    index = live_index(school.pk)
    assert list(index.template_ids) == [second.pk]
    built = match_index_for(school.pk)  # as identification builds it
    assert list(built.template_ids) == list(index.template_ids)
    assert np.allclose(built.columns, index.columns) and np.allclose(built.norms, index.norms)


def test_every_step_records_what_its_verification_measured(held_child, purposes, parent_a):
    erasure = run_all(withdraw(held_child, purposes, parent_a))
    proof = dict(erasure.steps.values_list("kind", "proof"))
    assert proof["database"]["match_index_probe"]["matches_to_the_child"] == 0
    assert proof["http"]["holder"]["answered"] == 404
    assert proof["http"]["holder"]["erased"] == 1
    assert proof["database"]["match_index_probe"]["tolerance"] == pytest.approx(0.6)
