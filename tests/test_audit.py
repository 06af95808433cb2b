"""The audit trail is append-only and hash-chained; verify_audit finds the first broken link."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from consent.actors import Actor
from consent.audit import audit_record, audit_verify
from consent.models import AuditEvent


def _chain(n=5):
    return [
        audit_record("test.event", actor=Actor.system("t"), subject="s", data={"i": i})
        for i in range(n)
    ]


def test_events_link_to_their_predecessor(db):
    events = _chain()
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    assert audit_verify().ok


def test_verify_audit_reports_ok(db, capsys):
    _chain()
    call_command("verify_audit")
    assert "OK" in capsys.readouterr().out


def test_changed_content_is_found_at_the_right_event(db):
    events = _chain()
    with connection.cursor() as cursor:  # tamper behind the ORM's back, as an attacker would
        cursor.execute(
            "UPDATE consent_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', events[2].pk]
        )
    report = audit_verify()
    assert not report.ok
    assert report.first_broken_id == events[2].pk
    with pytest.raises(CommandError, match=f"event {events[2].pk}"):
        call_command("verify_audit")


def test_deleted_event_breaks_the_link(db):
    events = _chain()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consent_auditevent WHERE id = %s", [events[1].pk])
    report = audit_verify()
    assert report.first_broken_id == events[2].pk


def test_truncated_tail_is_found(db):
    events = _chain()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consent_auditevent WHERE id = %s", [events[-1].pk])
    assert not audit_verify().ok


def test_events_cannot_be_edited_or_deleted_through_the_orm(db):
    (event,) = _chain(1)
    event.action = "changed"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()


@pytest.mark.parametrize("key", ["embedding", "name", "image"])
def test_events_refuse_biometric_or_identifying_payloads(db, key):
    with pytest.raises(ValueError, match="never carry"):
        audit_record("test.event", actor=Actor.system(), data={key: "x"})
    assert not AuditEvent.objects.exists()


def test_enrolment_audit_names_no_child_and_no_numbers(enrolled_child_a):
    for event in AuditEvent.objects.all():
        text = str(event.data) + event.actor_label + event.subject
        assert "Child A" not in text
        assert str(enrolled_child_a.pk) not in text
    assert AuditEvent.objects.filter(subject=str(enrolled_child_a.subject_id)).exists()


# --- Anchored outside the database: signed checkpoints -------------------------------------


def _rewrite_from(event_id: int, data: str) -> None:
    """What someone who can write the database does to hide a change: edit an event, then
    recompute every hash after it and move the head, so the chain alone holds again."""
    from consent.models import AuditChainHead

    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_auditevent SET data = %s WHERE id = %s", [data, event_id])
    before = AuditEvent.objects.filter(pk__lt=event_id).order_by("-pk").first()
    prev = before.hash if before else "0" * 64
    for event in AuditEvent.objects.filter(pk__gte=event_id).order_by("pk"):
        event.prev_hash = prev
        prev = event.compute_hash()
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=event.prev_hash, hash=prev)
    AuditChainHead.objects.filter(pk=1).update(last_hash=prev)


def _truncate(n: int) -> None:
    from consent.models import AuditChainHead

    newest = list(AuditEvent.objects.order_by("-pk")[: n + 1])
    with connection.cursor() as cursor:
        for event in newest[:n]:
            cursor.execute("DELETE FROM consent_auditevent WHERE id = %s", [event.pk])
    AuditChainHead.objects.filter(pk=1).update(last_hash=newest[n].hash, last_event_id=newest[n].pk)


def test_a_signed_checkpoint_is_written_outside_the_database_and_emailed(
    db, school, checkpoint_dir, capsys
):
    from django.core import mail

    from consent.audit_checkpoints import audit_checkpoint_read, checkpoint_signature_valid

    events = _chain()
    call_command("verify_audit", "--checkpoint")
    out = capsys.readouterr().out
    assert "no signed checkpoint to check it against yet" in out
    (path,) = checkpoint_dir.glob("audit-checkpoint-*.json")
    assert (path.stat().st_mode & 0o777) == 0o600
    checkpoint = audit_checkpoint_read(path)
    assert checkpoint["head_event_id"] == events[-1].pk
    assert checkpoint["head_hash"] == events[-1].hash
    assert checkpoint["count"] == AuditEvent.objects.count()
    assert checkpoint_signature_valid(checkpoint)
    assert not checkpoint_signature_valid({**checkpoint, "count": 4})
    (message,) = mail.outbox
    assert message.to == [school.dpo_email]
    assert checkpoint["signature"] in message.body

    _chain(2)  # appended since: still matches (the checkpoint pins the past, not the future)
    call_command("verify_audit")
    assert "matches the signed checkpoint" in capsys.readouterr().out


def test_a_rewritten_trail_passes_the_chain_but_not_the_checkpoint(db, capsys):
    from consent.audit_checkpoints import audit_checkpoint_write

    events = _chain(6)
    audit_checkpoint_write(email=False)
    _rewrite_from(events[2].pk, '{"i": 99}')
    assert audit_verify().ok  # the chain alone is fooled, as the review found
    with pytest.raises(CommandError, match="rewritten"):
        call_command("verify_audit")


def test_a_truncated_trail_passes_the_chain_but_not_the_checkpoint(db):
    from consent.audit_checkpoints import audit_checkpoint_write

    _chain(6)
    audit_checkpoint_write(email=False)
    _truncate(2)
    assert audit_verify().ok
    with pytest.raises(CommandError, match="truncated"):
        call_command("verify_audit")


def test_events_removed_and_relinked_before_the_checkpoint_are_found(db):
    from consent.audit_checkpoints import audit_checkpoint_write

    events = _chain(6)
    audit_checkpoint_write(email=False)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consent_auditevent WHERE id = %s", [events[1].pk])
    _rewrite_from(events[2].pk, '{"i": 2}')  # relink from the gap on
    assert audit_verify().ok
    with pytest.raises(CommandError, match="checkpoint"):
        call_command("verify_audit")


def test_an_edited_checkpoint_file_is_reported_not_trusted(db, checkpoint_dir):
    import json

    from consent.audit_checkpoints import audit_checkpoint_write

    _chain(3)
    _, path = audit_checkpoint_write(email=False)
    forged = json.loads(path.read_text())
    forged["count"] = 2
    path.write_text(json.dumps(forged))
    with pytest.raises(CommandError, match="do not verify"):
        call_command("verify_audit")


def test_checkpoints_signed_before_a_key_rotation_still_verify_and_a_stranger_key_does_not(
    db, settings, checkpoint_dir, capsys
):
    """Checkpoints are signed like receipts: they name a key of the published history, so the
    one written before a rotation still pins the trail; one signed by a key outside the
    history is reported, never trusted."""
    import base64
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from django.utils import timezone

    from consent import signing
    from consent.audit_checkpoints import audit_checkpoint_write, checkpoint_signature_valid

    def public_b64(seed: bytes) -> str:
        key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    old_seed, new_seed, stranger = os.urandom(32), os.urandom(32), os.urandom(32)
    settings.GUARDIAN_SIGNING_KEY, settings.GUARDIAN_SIGNING_KEYS_RETIRED = old_seed, []
    _chain(3)
    before, _ = audit_checkpoint_write(email=False)
    assert before["key_id"] == signing.current_key().key_id

    settings.GUARDIAN_SIGNING_KEY = new_seed
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = [
        {"public_key": public_b64(old_seed), "valid_until": timezone.now().isoformat()}
    ]
    assert checkpoint_signature_valid(before)
    _chain(2)
    call_command("verify_audit")
    assert "matches the signed checkpoint" in capsys.readouterr().out

    settings.GUARDIAN_SIGNING_KEY, settings.GUARDIAN_SIGNING_KEYS_RETIRED = stranger, []
    forged, _ = audit_checkpoint_write(email=False)
    settings.GUARDIAN_SIGNING_KEY = new_seed
    settings.GUARDIAN_SIGNING_KEYS_RETIRED = [
        {"public_key": public_b64(old_seed), "valid_until": timezone.now().isoformat()}
    ]
    assert not checkpoint_signature_valid(forged)
    with pytest.raises(CommandError, match="do not verify"):
        call_command("verify_audit")


def test_the_transparency_page_shows_the_latest_checkpoint(db, client, school):
    from consent.audit_checkpoints import audit_checkpoint_write

    page = client.get(f"/schools/{school.slug}/").content.decode()
    assert "No checkpoint has been signed yet." in page
    _chain(3)
    checkpoint, _ = audit_checkpoint_write(email=False)
    page = client.get(f"/schools/{school.slug}/").content.decode()
    assert checkpoint["head_hash"] in page
    assert checkpoint["signature"] in page


def test_people_are_pseudonymous_in_the_trail(child_a, parent_a, purposes, admin_user):
    """A guardian's or a staff member's name never enters the trail: kind and id only."""
    from consent.models import Decision
    from consent.services import consent_decide

    admin_user.first_name, admin_user.last_name = "Ada", "Staffwoman"
    admin_user.save()
    consent_decide(
        student=child_a,
        purpose=purposes["attendance"],
        guardian=parent_a,
        decision=Decision.GRANT,
        notice_version=1,
    )
    audit_record("test.staff_read", actor=Actor.staff(admin_user), subject=child_a.subject_id)
    by_guardian = AuditEvent.objects.filter(actor_kind="guardian")
    assert by_guardian.exists()
    for event in AuditEvent.objects.all():
        text = event.actor_label + str(event.data)
        assert parent_a.name not in text and "Staffwoman" not in text
    assert {e.actor_id for e in by_guardian} == {str(parent_a.pk)}
    staff = AuditEvent.objects.get(action="test.staff_read")
    assert (staff.actor_kind, staff.actor_id, staff.actor_label) == (
        "staff",
        str(admin_user.pk),
        "",
    )
    assert AuditEvent.objects.filter(actor_kind="system").exclude(actor_label="").exists()


def test_a_withdrawal_and_the_erasure_it_opens_are_one_unbroken_stretch_of_the_chain(
    enrolled_child_a, parent_a, purposes
):
    """The decision's event and the erasure's are appended together at the end of the call."""
    from consent.services import consent_decide

    before = AuditEvent.objects.count()
    outcome = consent_decide(
        student=enrolled_child_a,
        purpose=purposes["gate_access"],
        guardian=parent_a,
        decision="withdraw",
        notice_version=None,
    )
    assert outcome.ended == {"gate_access"}
    added = list(AuditEvent.objects.order_by("pk")[before:])
    assert [e.action for e in added] == ["consent.withdraw", "erasure.requested"]
    assert added[1].prev_hash == added[0].hash
    assert audit_verify().ok


def test_events_of_a_step_that_failed_and_was_retried_are_not_kept(db):
    """Inside a batch, what a caught error undid leaves no event behind."""
    from consent.audit import audit_batch, audit_undo_on_error

    before = AuditEvent.objects.count()
    with audit_batch():
        audit_record("test.kept", actor=Actor.system("t"))

        def undone():
            with audit_undo_on_error():
                audit_record("test.undone", actor=Actor.system("t"))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            undone()
        audit_record("test.kept_too", actor=Actor.system("t"))
        assert AuditEvent.objects.count() == before  # appended when the batch ends
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))[before:]
    assert actions == ["test.kept", "test.kept_too"]
    assert audit_verify().ok
