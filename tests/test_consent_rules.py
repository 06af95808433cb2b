"""The consent rule (docs/consent-rule.md), as far as the foundation needs it: the statuses
every page shows. The full clause-by-clause suite arrives with the consent issue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import Decision
from consent.rules import active_purpose_codes, purpose_statuses
from consent.services import ConsentError, consent_decide, notice_publish

from .factories import TEST_ACTOR, StudentFactory, grant, guardian, link


def status_of(child, code, **kw):
    return next(s for s in purpose_statuses(child, **kw) if s.code == code)


def test_silence_is_not_consent(school, purposes, parent_a):
    child = StudentFactory(school=school)
    link(parent_a, child)
    assert status_of(child, "gate_access").reason == "no_consent"
    assert not active_purpose_codes(child)


def test_one_grant_with_everyone_notified_is_active(child_a):
    assert active_purpose_codes(child_a) == {"gate_access"}


def test_any_guardians_objection_wins(child_a, purposes):
    second = guardian("second@example.com")
    link(second, child_a)
    consent_decide(
        student=child_a,
        purpose=purposes["gate_access"],
        guardian=second,
        decision=Decision.OBJECT,
        notice_version=1,
    )
    assert status_of(child_a, "gate_access").reason == "guardian_objected"


def test_unnotified_guardian_blocks(child_a):
    link(guardian("unknown@example.com"), child_a, notified=False)
    assert status_of(child_a, "gate_access").reason == "guardian_not_notified"


def test_new_notice_makes_old_grants_stale(child_a, purposes, parent_a):
    notice_publish(purpose=purposes["gate_access"], text="v2", actor=TEST_ACTOR)
    assert status_of(child_a, "gate_access").reason == "notice_changed"
    with pytest.raises(ConsentError) as caught:
        consent_decide(
            student=child_a,
            purpose=purposes["gate_access"],
            guardian=parent_a,
            decision=Decision.GRANT,
            notice_version=1,
        )
    assert caught.value.code == "stale_notice"
    grant(child_a, purposes["gate_access"], parent_a)
    assert status_of(child_a, "gate_access").active


def test_consent_expires_after_the_schools_validity(child_a):
    later = timezone.now() + timedelta(days=child_a.school.consent_validity_days + 1)
    assert status_of(child_a, "gate_access", at=later).reason == "expired"


def test_a_disabled_purpose_is_never_active(child_a, purposes):
    purposes["gate_access"].enabled = False
    purposes["gate_access"].save()
    assert status_of(child_a, "gate_access").reason == "purpose_disabled"


def test_statuses_at_an_earlier_time_ignore_later_decisions(child_a, purposes, parent_a):
    before = timezone.now()
    consent_decide(
        student=child_a,
        purpose=purposes["gate_access"],
        guardian=parent_a,
        decision=Decision.WITHDRAW,
        notice_version=1,
    )
    assert not status_of(child_a, "gate_access").active
    assert status_of(child_a, "gate_access", at=before).active


def test_a_decision_says_what_it_did_as_the_rule_says_it_afterwards(child_a, purposes):
    outcome = consent_decide(
        student=child_a,
        purpose=purposes["gate_access"],
        guardian=child_a.guardianships.get().guardian,
        decision=Decision.WITHDRAW,
        notice_version=None,
    )
    assert outcome.record.decision == Decision.WITHDRAW and outcome.record.receipt
    assert outcome.ended == {"gate_access"}
    assert outcome.status_of("gate_access").active is False
    fresh = purpose_statuses(child_a)
    assert [(s.code, s.status, s.reason) for s in outcome.statuses] == [
        (s.code, s.status, s.reason) for s in fresh
    ]
