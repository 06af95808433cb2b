"""Erasure across every system, run step by step in this process against a real reference
holder process (real Celery workers drive it in tests/integration/test_erasure_faults.py)."""

import pytest
from django.core import mail
from django.db import connection

from biometrics import demo_photos
from biometrics.crypto import KeyDestroyed, decrypt_for_child
from biometrics.erasure import erasure_open, erasure_step_run, erasure_watchdog
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify
from biometrics.models import (
    ErasureRequest,
    ErasureStep,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
    TemplateCopy,
)
from biometrics.receipts import receipt_verify, signed_receipt
from biometrics.selectors import held_data
from biometrics.services import erasure_request_by_parent, photo_enrol, template_copy_push
from consent.models import AuditEvent, Decision
from consent.services import consent_decide
from portal.celery import app as celery_app

from .factories import TEST_ACTOR


def withdraw(child, purposes, parent):
    consent_decide(
        student=child,
        purpose=purposes["gate_access"],
        guardian=parent,
        decision=Decision.WITHDRAW,
        notice_version=1,
    )
    return ErasureRequest.objects.get(student=child)


def run_all(erasure):
    """What the workers do: every step, the key last (steps backing off are due at once)."""
    erasure.steps.update(next_attempt_at=None)
    for step in erasure.steps.exclude(kind="key"):
        erasure_step_run(step_id=step.pk)
    for step in erasure.steps.filter(kind="key"):
        erasure_step_run(step_id=step.pk)
    erasure.refresh_from_db()
    return erasure


def test_withdrawal_erases_everything_everywhere_and_proves_it(
    held_child, purposes, parent_a, holder_proc, media_dir, django_capture_on_commit_callbacks
):
    template = FaceTemplate.objects.get(student=held_child)
    ciphertext = bytes(template.ciphertext)
    subject = str(held_child.subject_id)
    assert holder_proc.info["client"].get_subject(subject) is not None

    erasure = withdraw(held_child, purposes, parent_a)
    kinds = [s.kind for s in erasure.steps.all()]
    assert kinds == ["database", "media", "cache", "exports", "http", "key"]
    with django_capture_on_commit_callbacks(execute=True):
        erasure = run_all(erasure)

    assert erasure.status == "verified"
    assert all(s.status == "verified" and s.verified_at for s in erasure.steps.all())
    # nothing of the child left in any store
    assert not Photo.objects.filter(student=held_child).exists()
    assert not FaceTemplate.objects.filter(student=held_child).exists()
    assert not RecognitionEvent.objects.filter(student=held_child).exists()
    assert not list(media_dir.rglob("*.gv1"))
    assert holder_proc.info["client"].get_subject(subject) is None
    with pytest.raises(KeyDestroyed):
        decrypt_for_child(held_child.pk, ciphertext, context=f"template:{template.pk}")
    # identification with the former face finds no one
    probe = embedding_from_photo(demo_photos.grace_hopper())
    assert (
        identify(
            school=held_child.school,
            purpose=purposes["gate_access"],
            embedding=probe,
            device="Gate",
        )
        is None
    )
    # the receipt lists every system and verifies against the public key
    receipt = signed_receipt(erasure)
    assert receipt_verify(receipt)
    assert {s["system"] for s in receipt["systems"]} == {
        "Guardian portal database",
        "Photo storage",
        "Match cache",
        "Parent downloads",
        "Gate controller",
        "Child's data key",
    }
    by_kind = {s["kind"]: s for s in receipt["systems"]}
    assert by_kind["database"]["items_erased"] == 3  # photo, template, event
    assert by_kind["http"]["items_erased"] == 1
    # proved when it ran, before the key was destroyed: the former face matches no one...
    probe = receipt["proof_at_erasure"]["match_index"]
    assert probe["templates_probed"] == 1
    assert probe["matches_to_the_child"] == 0
    assert probe["match_index_templates"] == 0  # the school's index, rebuilt without the child
    # ...and the holder answered 404, before the key step ran
    (answer,) = receipt["proof_at_erasure"]["holders"]
    assert answer["system"] == "Gate controller" and answer["answered"] == 404
    assert answer["asked_at"] <= by_kind["key"]["verified_at"]
    tampered = {**receipt, "school": "Someone else"}
    assert not receipt_verify(tampered)
    # what the parent sees now
    doc = held_data(held_child)
    assert doc["photos"] == [] and doc["templates"] == []
    assert doc["recognition_events"]["count"] == 0
    assert doc["erasures"][0]["status"] == "verified"
    # the parents were told
    assert any("erased" in m.subject for m in mail.outbox)
    # the audit trail never names the child
    for event in AuditEvent.objects.filter(subject=subject):
        assert "Child A" not in str(event.data)


def test_a_step_delivered_twice_does_no_harm(held_child, purposes, parent_a):
    erasure = withdraw(held_child, purposes, parent_a)
    db_step = erasure.steps.get(kind="database")
    first = erasure_step_run(step_id=db_step.pk)
    second = erasure_step_run(step_id=db_step.pk)
    assert first.status == second.status == "verified"
    assert second.items_erased == first.items_erased == 3
    assert second.attempts == 1


def test_the_key_waits_for_every_other_system(held_child, purposes, parent_a):
    erasure = withdraw(held_child, purposes, parent_a)
    key_step = erasure.steps.get(kind="key")
    assert erasure_step_run(step_id=key_step.pk).status == "pending"
    assert FaceTemplate.objects.filter(student=held_child).exists()


def test_a_holder_that_is_down_delays_but_never_loses_the_erasure(
    held_child, purposes, parent_a, holder, settings
):
    real_url = holder.base_url
    Holder.objects.filter(pk=holder.pk).update(base_url="http://127.0.0.1:9")  # nothing there
    erasure = withdraw(held_child, purposes, parent_a)
    http_step = erasure.steps.get(kind="http")
    for _ in range(3):  # delivered three times at once: tried once, then it waits its turn
        erasure_step_run(step_id=http_step.pk)
    http_step.refresh_from_db()
    erasure.refresh_from_db()
    assert http_step.status == "pending"
    assert http_step.attempts == 1
    assert http_step.last_error == "HolderUnavailable: ConnectionRefusedError"
    assert http_step.next_attempt_at > http_step.updated_at
    assert erasure.status == "running"
    assert not [m for m in mail.outbox if "need attention" in m.subject]
    Holder.objects.filter(pk=holder.pk).update(base_url=real_url)  # back up
    erasure = run_all(erasure)
    assert erasure.status == "verified"


def test_watchdog_redrives_steps_that_stopped_moving(held_child, purposes, parent_a, settings):
    erasure = withdraw(held_child, purposes, parent_a)
    assert erasure_watchdog() == 0  # nothing is stale yet
    settings.ERASURE_STUCK_SECONDS = 0
    ErasureStep.objects.filter(request=erasure).update(status="running")
    # One task for the portal's own steps (database, then media, then the cache and key in
    # turn) and one for the holder.
    assert erasure_watchdog() == 2
    assert AuditEvent.objects.filter(action="erasure.watchdog_redrove").exists()


def test_second_trigger_joins_the_open_erasure(held_child, purposes, parent_a):
    first = withdraw(held_child, purposes, parent_a)
    again = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    assert again.pk == first.pk
    assert ErasureRequest.objects.filter(student=held_child).count() == 1


def test_delete_everything_stops_every_purpose_and_erases(held_child, parent_a, purposes):
    erasure = erasure_request_by_parent(student=held_child, guardian=parent_a)
    assert erasure.trigger == "parent_request"
    from consent.rules import active_purpose_codes

    assert not active_purpose_codes(held_child)
    # no one can enrol while it runs
    from biometrics.services import NoActiveConsent

    with pytest.raises(NoActiveConsent):
        photo_enrol(student=held_child, data=demo_photos.grace_hopper(), actor=TEST_ACTOR)
    assert run_all(erasure).status == "verified"


def test_parent_api_erasure_flow_and_ownership(api_a, api_b, child_b, held_child):
    r = api_a.post(f"/api/v1/children/{held_child.pk}/erasures/")
    assert r.status_code == 202
    erasure_id = r.json()["id"]
    progress = api_a.get(f"/api/v1/erasures/{erasure_id}/")
    assert progress.status_code == 200
    body = progress.json()
    assert body["status"] == "pending"
    assert {"system", "status", "attempts", "items_erased", "verified_at", "last_error"} <= set(
        body["steps"][0]
    )
    assert body["receipt_url"] is None
    assert api_a.get(f"/api/v1/erasures/{erasure_id}/receipt/").status_code == 409
    assert api_b.get(f"/api/v1/erasures/{erasure_id}/").status_code == 404
    assert api_b.post(f"/api/v1/children/{held_child.pk}/erasures/").status_code == 404
    run_all(ErasureRequest.objects.get(pk=erasure_id))
    done = api_a.get(f"/api/v1/erasures/{erasure_id}/").json()
    assert done["status"] == "verified"
    assert done["receipt_url"].endswith(f"/api/v1/erasures/{erasure_id}/receipt/")
    receipt = api_a.get(f"/api/v1/erasures/{erasure_id}/receipt/").json()
    key = api_a.get("/api/v1/receipts/public-key/").json()["public_key"]
    assert receipt_verify(receipt, key)


def test_parent_pages_show_progress_and_receipt(web_a, held_child):
    r = web_a.get(f"/children/{held_child.pk}/delete/")
    assert r.status_code == 200
    r = web_a.post(f"/children/{held_child.pk}/delete/")
    assert r.status_code == 302
    page = web_a.get(r["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page
    assert "Gate controller" in page
    run_all(ErasureRequest.objects.get(student=held_child))
    page = web_a.get(r["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "receipt" in page


@pytest.mark.django_db(transaction=True)
def test_crypto_shredding_makes_a_database_copy_useless(held_child, purposes, parent_a, tmp_path):
    """Copy the database before the erasure; afterwards the copy's ciphertext is unreadable."""
    import sqlite3

    template = FaceTemplate.objects.get(student=held_child)
    if connection.vendor == "sqlite":
        backup = tmp_path / "before-erasure.sqlite3"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(backup)])
    run_all(withdraw(held_child, purposes, parent_a))
    if connection.vendor == "sqlite":
        with sqlite3.connect(backup) as copy:
            ((ciphertext,),) = copy.execute(
                "SELECT ciphertext FROM biometrics_facetemplate WHERE id = ?", [template.pk.hex]
            ).fetchall()
    else:  # a dump of PostgreSQL holds the same bytes the row held before the erasure
        ciphertext = bytes(template.ciphertext)
    assert not FaceTemplate.objects.filter(pk=template.pk).exists()
    assert ciphertext  # the copy still has the ciphertext...
    with pytest.raises(KeyDestroyed):  # ...which nobody can open any more
        decrypt_for_child(held_child.pk, ciphertext, context=f"template:{template.pk}")


def test_portal_steps_run_in_one_task_and_the_last_holder_destroys_the_key(
    held_child, purposes, parent_a
):
    erasure = withdraw(held_child, purposes, parent_a)
    erasure_step_run(step_id=erasure.steps.get(kind="database").pk)
    assert dict(erasure.steps.values_list("kind", "status")) == {
        "database": "verified",
        "media": "verified",
        "cache": "verified",
        "exports": "verified",
        "http": "pending",  # its own task
        "key": "pending",  # waits for the holder
    }
    erasure_step_run(step_id=erasure.steps.get(kind="http").pk)
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    assert erasure.steps.get(kind="key").status == "verified"
    sealed = AuditEvent.objects.get(action="erasure.verified", data__erasure=str(erasure.pk))
    assert [s["system"] for s in sealed.data["systems"]] == [
        s.system for s in erasure.steps.order_by("id")
    ]


def test_one_task_erases_every_waiting_child_in_a_batch(held_child, child_b, purposes, holder):
    """A thousand erasures opened at once are worked in batches: the task for one child's
    step does the same step for the others waiting, each recorded on its own row."""
    import numpy as np

    from biometrics.services import template_create

    template_create(student=child_b, photo=None, embedding=np.full(128, 0.05))
    for copy in TemplateCopy.objects.filter(template__student=child_b):
        template_copy_push(copy_id=copy.pk)
    first = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    second = erasure_open(student=child_b, trigger="staff", actor=TEST_ACTOR)

    erasure_step_run(step_id=first.steps.get(kind="database").pk)
    for erasure in (first, second):
        statuses = dict(erasure.steps.values_list("kind", "status"))
        assert statuses == {
            "database": "verified",
            "media": "verified",
            "cache": "verified",
            "exports": "verified",
            "http": "pending",
            "key": "pending",
        }
    assert second.steps.get(kind="database").items_erased == 1  # its template
    assert not FaceTemplate.objects.filter(student__in=[held_child, child_b]).exists()

    erasure_step_run(step_id=first.steps.get(kind="http").pk)
    for erasure in (first, second):
        erasure.refresh_from_db()
        assert erasure.status == "verified"
        assert receipt_verify(signed_receipt(erasure))
    for child in (held_child, child_b):
        assert holder.client().get_subject(str(child.subject_id)) is None
        with pytest.raises(KeyDestroyed):
            decrypt_for_child(child.pk, b"x" * 40, context="photo:x")
    # each sealed once, with one audit event each
    assert AuditEvent.objects.filter(action="erasure.verified").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_step_is_claimed_while_another_worker_holds_its_request_row(
    held_child, purposes, parent_a
):
    """Claims lock only step rows: a worker holding the request row (another holder's claim,
    a seal) must not make this step look taken (it would wait for the watchdog)."""
    import threading

    from django.db import connections, transaction
    from django.db.models import Q

    from biometrics.erasure.runner import _claim

    if connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED are PostgreSQL's; SQLite serialises writers")
    erasure = withdraw(held_child, purposes, parent_a)
    step = erasure.steps.get(kind="http")
    locked, release = threading.Event(), threading.Event()

    def hold_request_row():
        try:
            with transaction.atomic():
                ErasureRequest.objects.select_for_update().get(pk=erasure.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    other = threading.Thread(target=hold_request_row)
    other.start()
    try:
        assert locked.wait(10)
        claimed = _claim(Q(kind="http", request__status__in=["pending", "running"]), limit=5)
        assert [s.pk for s in claimed] == [step.pk]
        # ...and it did not wait for the other worker either: that one still holds the row
        # (it lets go when told, or after 10 s).
        assert other.is_alive()
    finally:
        release.set()
        other.join()


def test_many_erasures_opened_at_once_drain_in_batches_of_tasks(
    school, holder, child_a, child_b, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Opened together, erasures are queued one task per batch (per holder, and for the
    portal's stores); a full batch queues a follow-up while steps are left; all end sealed."""
    from biometrics.erasure import STEP_TASK, erasure_open_many

    from .factories import StudentFactory

    settings.ERASURE_BATCH = 2
    queued = []
    monkeypatch.setattr(
        celery_app,
        "send_task",
        lambda name, args=None, **options: queued.append(args[0]) if name == STEP_TASK else None,
    )
    children = [child_a, child_b, StudentFactory(school=school, name="Child C")]
    with django_capture_on_commit_callbacks(execute=True):
        erasures = erasure_open_many(students=children, trigger="staff", actor=TEST_ACTOR)
    assert len({e.pk for e in erasures}) == 3
    kinds = sorted(ErasureStep.objects.get(pk=pk).kind for pk in queued)
    assert kinds == ["database", "database", "http", "http"]  # 3 children, batches of 2
    assert erasure_open_many(students=children[:1], trigger="staff", actor=TEST_ACTOR) == [
        erasures[0]
    ]  # joins the open one
    ran = 0
    while queued:
        with django_capture_on_commit_callbacks(execute=True):
            erasure_step_run(step_id=queued.pop(0))
        ran += 1
    assert ran <= 6
    assert set(ErasureRequest.objects.values_list("status", flat=True)) == {"verified"}
    assert AuditEvent.objects.filter(action="erasure.requested").count() == 3


def test_watchdog_seals_an_erasure_whose_steps_all_verified(held_child, settings):
    erasure = erasure_open(student=held_child, trigger="staff", actor=TEST_ACTOR)
    # As if the worker that verified the last step died before sealing.
    ErasureStep.objects.filter(request=erasure).update(status="verified")
    ErasureRequest.objects.filter(pk=erasure.pk).update(status="running")
    erasure_watchdog()  # not stale yet: left alone
    erasure.refresh_from_db()
    assert erasure.status == "running"
    settings.ERASURE_STUCK_SECONDS = 0
    erasure_watchdog()
    erasure.refresh_from_db()
    assert erasure.status == "verified"
    assert receipt_verify(signed_receipt(erasure))
