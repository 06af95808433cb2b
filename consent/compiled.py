"""Querysets whose SQL is built once per process and run many times (the hot paths).

Building a queryset's SQL (filters, joins, select_related, ordering) takes Django 0.3–1 ms of
CPU; running a lookup by a unique key takes PostgreSQL about 0.1 ms. On a path run a hundred
times a second (a gate's identification: the API key, the purpose, the consent rule's rows, the
template check) the building was most of the work. `CompiledQuery` builds the queryset once
per database with stand-in values, keeps its SQL, converters and row-to-object plan, and on
each call only puts the real values in, runs the SQL and turns the rows into what the queryset
would have returned: model instances (with their select_related objects) or values_list tuples.

    key_by_hash = CompiledQuery(
        lambda key_hash: ApiKey.objects.select_related("school").filter(key_hash=key_hash),
        key_hash=ApiKey._meta.get_field("key_hash"),
    )
    keys = key_by_hash(key_hash="…")          # [ApiKey] with .school loaded

Every parameter is named, with the model field whose column it is compared with (the value is
converted for the database as that field's would be). The build function must use each
parameter exactly as a value compared with a column; the same SQL serves every call, so
nothing in it may depend on the values (no `if value:` inside the build).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from django.db import connections, models
from django.db.models.query import ModelIterable, ValuesListIterable, get_related_populators
from psycopg import ClientCursor


def _stand_in(field: models.Field, n: int):
    """A value of the field's type that no real query would use, distinct per parameter."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.UUIDField):
        return uuid.UUID(int=0xC0DE0000 + n)
    if isinstance(target, models.DateTimeField):
        return datetime(1901, 1, 1 + n, tzinfo=UTC)
    if isinstance(target, models.DateField):
        return date(1901, 1, 1 + n)
    if isinstance(target, models.IntegerField | models.AutoField):
        return -(7_000_000_017 + n)
    if isinstance(target, models.CharField | models.TextField):
        return f"\x01stand-in {n}\x01"
    raise TypeError(f"CompiledQuery: no stand-in value for {type(target).__name__}")


class _Plan:
    """The SQL of one queryset on one database, and how its rows become results."""

    def __init__(self, qs: models.QuerySet, alias: str, stand_ins: dict, fields: dict) -> None:
        connection = connections[alias]
        compiler = qs.query.get_compiler(alias)
        self.sql, params = compiler.as_sql()
        prepped = {
            name: fields[name].get_db_prep_value(value, connection)
            for name, value in stand_ins.items()
        }
        # Each place in the SQL's parameters: the name of the value that goes there, or None
        # for a constant of the queryset itself (kept as it was compiled).
        self.slots: list[str | None] = []
        for param in params:
            names = [name for name, value in prepped.items() if value == param]
            self.slots.append(names[0] if names else None)
        missing = set(stand_ins) - set(self.slots)
        if missing:
            raise RuntimeError(f"CompiledQuery: {sorted(missing)} not found in {self.sql}")
        self.constants = list(params)
        self.fields = fields
        self.alias = alias
        fields_selected = [s[0] for s in compiler.select[0 : compiler.col_count]]
        self.converters = compiler.get_converters(fields_selected)
        self.compiler = compiler
        if qs._iterable_class not in (ModelIterable, ValuesListIterable):
            raise TypeError("CompiledQuery returns model instances or values_list tuples only")
        self.models = qs._iterable_class is ModelIterable
        if self.models:
            if compiler.annotation_col_map:
                raise TypeError("CompiledQuery: annotate model rows through values_list instead")
            info = compiler.klass_info
            self.model = info["model"]
            start, end = info["select_fields"][0], info["select_fields"][-1] + 1
            self.span = (start, end)
            self.init_list = [f[0].target.attname for f in compiler.select[start:end]]
            self.related = get_related_populators(info, compiler.select, alias)  # type: ignore[call-arg]  # stubs: Django 6

    def params(self, values: dict) -> list:
        connection = connections[self.alias]
        prepped = {
            name: self.fields[name].get_db_prep_value(
                self.fields[name].to_python(value), connection
            )
            for name, value in values.items()
        }
        return [
            prepped[slot] if slot is not None else constant
            for slot, constant in zip(self.slots, self.constants, strict=True)
        ]

    def results(self, rows) -> list:
        """The rows as the queryset would return them: model instances, or tuples."""
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        if not self.models:
            return [tuple(row) for row in rows]
        start, end = self.span
        out = []
        for row in rows:
            obj = self.model.from_db(self.alias, self.init_list, row[start:end])
            for populator in self.related:
                populator.populate(row, obj)
            out.append(obj)
        return out


class CompiledQuery:
    """A queryset, built by `build(**parameters)`, whose SQL is compiled once per database."""

    def __init__(self, build: Callable[..., models.QuerySet], **fields: models.Field) -> None:
        self.build = build
        self.fields = fields
        self.stand_ins = {name: _stand_in(f, n) for n, (name, f) in enumerate(fields.items())}
        self._plans: dict[str, _Plan] = {}
        self._alias: str | None = None
        self._lock = threading.Lock()

    def _plan(self) -> _Plan:
        plan = self._plans.get(self._alias) if self._alias else None
        if plan is None:
            with self._lock:
                # The database is the queryset's own (the router's for its model).
                qs = self.build(**self.stand_ins)
                self._alias = qs.db
                plan = self._plans.get(qs.db)
                if plan is None:
                    plan = self._plans[qs.db] = _Plan(qs, qs.db, self.stand_ins, self.fields)
        return plan

    def __call__(self, **values) -> list:
        (found,) = run_together((self, values))
        return found


def run_together(*calls: tuple[CompiledQuery, dict]) -> list[list]:
    """Each (query, values)'s results, the queries on one database in one round trip where the
    driver allows it: on PostgreSQL (psycopg's client-side binding, Django's default) the
    statements go as one, and their results are read in turn; elsewhere (SQLite, in the same
    process: no round trip to save) one after another. Eight small lookups cost PostgreSQL
    about 0.9 ms of CPU one by one and 0.6 ms together, and the web process 0.6 and 0.2 ms."""
    plans = []
    for query, values in calls:
        if set(values) != set(query.fields):
            raise TypeError(f"CompiledQuery takes {sorted(query.fields)}, got {sorted(values)}")
        plans.append((query._plan(), values))
    aliases = {plan.alias for plan, _ in plans}
    if len(aliases) != 1:
        raise ValueError(f"run_together: queries on several databases {sorted(aliases)}")
    connection = connections[aliases.pop()]
    out = []
    with connection.cursor() as cursor:
        if len(plans) > 1 and _statements_join(cursor):
            cursor.execute(
                "; ".join(plan.sql for plan, _ in plans),
                [p for plan, values in plans for p in plan.params(values)],
            )
            for n, (plan, _) in enumerate(plans):
                if n and not cursor.nextset():
                    raise RuntimeError("run_together: fewer results than statements")
                out.append(plan.results(cursor.fetchall()))
        else:
            for plan, values in plans:
                cursor.execute(plan.sql, plan.params(values))
                out.append(plan.results(cursor.fetchall()))
    return out


def _statements_join(cursor) -> bool:
    """Whether this cursor runs several statements in one execute and hands each result
    (psycopg 3's client-side cursor)."""
    return isinstance(getattr(cursor, "cursor", None), ClientCursor)
