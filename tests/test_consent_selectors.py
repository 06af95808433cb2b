"""Reads scoped by the requester (consent/selectors.py)."""

from __future__ import annotations

import pytest

from consent.selectors import purpose_get
from consent.services import PURPOSE_UNKNOWN, ConsentError

from .factories import SchoolFactory
from .factories import purpose_with_notice as make_purpose


def test_purpose_get_finds_the_schools_purpose_by_code(school, purposes):
    assert purpose_get(school=school, code="gate_access") == purposes["gate_access"]


@pytest.mark.parametrize("code", ["canteen", ""])
def test_purpose_get_refuses_a_code_the_school_does_not_have(school, purposes, code):
    with pytest.raises(ConsentError) as raised:
        purpose_get(school=school, code=code)
    assert (raised.value.code, raised.value.detail) == ("unknown_purpose", PURPOSE_UNKNOWN)


def test_purpose_get_never_returns_another_schools_purpose(school, purposes):
    other = SchoolFactory(slug="other-school")
    make_purpose(other, "library")
    with pytest.raises(ConsentError):
        purpose_get(school=school, code="library")
    assert purpose_get(school=other, code="library").school == other
