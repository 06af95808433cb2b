"""consent.compiled: a queryset's SQL built once returns what the queryset itself returns, for
every call's own values; several run together return each its own rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.compiled import CompiledQuery, run_together
from consent.models import Guardianship, Purpose, Student

from .factories import StudentFactory, guardian, link

by_code = CompiledQuery(
    lambda school, code: Purpose.objects.select_related("school").filter(
        school_id=school, code=code, enabled=True
    ),
    school=Purpose._meta.get_field("school"),
    code=Purpose._meta.get_field("code"),
)
links_of = CompiledQuery(
    lambda student: Guardianship.objects.filter(student_id=student)
    .order_by("guardian__email")
    .values_list("guardian__email", "parental_responsibility"),
    student=Guardianship._meta.get_field("student"),
)


def test_models_with_select_related_as_the_queryset_returns_them(school, purposes):
    for code in ("gate_access", "attendance", "nope"):
        expected = list(
            Purpose.objects.select_related("school").filter(
                school_id=school.pk, code=code, enabled=True
            )
        )
        got = by_code(school=school.pk, code=code)
        assert [p.pk for p in got] == [p.pk for p in expected]
        for p, e in zip(got, expected, strict=True):
            assert (p.code, p.name, p.enabled, p.created_at) == (
                e.code,
                e.name,
                e.enabled,
                e.created_at,
            )
            with CaptureQueriesContext(connection) as queries:
                assert p.school.name == school.name  # loaded with it
            assert not queries


def test_values_and_constants_for_each_call(school, purposes):
    a, b = StudentFactory(school=school), StudentFactory(school=school)
    link(guardian("z@example.com"), a)
    link(guardian("y@example.com"), a, responsible=False)
    link(guardian("x@example.com"), b)
    assert links_of(student=a.pk) == [("y@example.com", False), ("z@example.com", True)]
    assert links_of(student=str(b.pk)) == [("x@example.com", True)]  # ids as text too
    # A disabled purpose: `enabled=True` is a constant of the compiled SQL, kept.
    Purpose.objects.filter(pk=purposes["attendance"].pk).update(enabled=False)
    assert by_code(school=school.pk, code="attendance") == []


def test_run_together_gives_each_its_rows_in_one_round_trip_on_postgresql(school, purposes):
    child = StudentFactory(school=school)
    link(guardian("w@example.com"), child)
    with CaptureQueriesContext(connection) as queries:
        found = run_together(
            (by_code, {"school": school.pk, "code": "gate_access"}),
            (links_of, {"student": child.pk}),
            (by_code, {"school": school.pk, "code": "attendance"}),
        )
    assert [p.code for p in found[0]] == ["gate_access"]
    assert found[1] == [("w@example.com", True)]
    assert [p.code for p in found[2]] == ["attendance"]
    assert len(queries) == (1 if connection.vendor == "postgresql" else 3)


def test_misuse_is_refused_loudly(school):
    with pytest.raises(TypeError):
        by_code(school=school.pk)  # a parameter missing
    unused = CompiledQuery(
        lambda student: Student.objects.filter(school_id=1),
        student=Student._meta.pk,
    )
    with pytest.raises(RuntimeError, match="not found"):
        unused(student=None)
    flat = CompiledQuery(
        lambda student: Student.objects.filter(pk=student).values_list("pk", flat=True),
        student=Student._meta.pk,
    )
    with pytest.raises(TypeError, match="values_list tuples only"):
        flat(student=None)
