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
