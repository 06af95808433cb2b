#!/usr/bin/env python
"""CPU per withdrawal in the request path (issue 17, part 3): the parent's
``POST /api/v1/children/{id}/consents/ {"decision": "withdraw"}``, in-process.

Setup (not timed): one school, one purpose (gate_access) with a notice; ``--n`` parents, each
with one child, consent granted and one template (so the withdrawal ends the last purpose and
opens an erasure, as on a news day), and a bearer token. Then each parent withdraws through the
real view (django.test.Client, bearer token), one after another: CPU seconds of this process
(``time.process_time``: Django, the rule, the audit chain, the receipt, the erasure opening,
the queueing), wall time, and queries per withdrawal. The broker is the filesystem transport in
the var dir (the erasure tasks are queued, nobody runs them).

    .venv/bin/python bench/decisions.py [--n 200] [--warmup 10] [--profile 30]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench_decisions .venv/bin/python bench/decisions.py

With DATABASE_URL (the name must contain "bench") the database and its ``_keys`` twin are
created afresh and dropped at the end. ``--profile K`` prints the K most expensive functions
(cumulative) of the timed withdrawals.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import time

import harness


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="timed withdrawals (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed withdrawals first")
    parser.add_argument("--profile", type=int, default=0, help="print the K top functions")
    parser.add_argument("--show-sql", action="store_true", help="print one withdrawal's SQL")
    return parser.parse_args(argv)


def seed(n: int):
    """n parents, each with one child with consent and one template, and a bearer token."""
    import numpy as np
    from django.db import transaction

    from biometrics.services import template_create
    from consent.services import guardian_get_or_create
    from portal.auth import api_token_issue

    school, purposes = harness.school_create("bench-decisions", "Decisions", ["gate_access"])
    purpose = purposes["gate_access"]
    rng = np.random.default_rng(17)
    people = []
    for i in range(n):
        parent = guardian_get_or_create(email=f"parent{i}@bench.example", name=f"Parent {i}")
        child = harness.child_with_consent(
            school, parent, [purpose], external_id=f"D-{i:05d}", name=f"Child {i}"
        )
        with transaction.atomic():
            template_create(student=child, photo=None, embedding=rng.normal(0, 0.12, 128))
        token, _ = api_token_issue(guardian=parent)
        people.append((child, token))
    return purpose, people


def withdraw(client, child, token: str, code: str) -> None:
    response = client.post(
        f"/api/v1/children/{child.pk}/consents/",
        {"purpose": code, "decision": "withdraw"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, (response.status_code, response.content[:300])
    assert response.json()["erasure_id"], response.json()


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = harness.configure(
        "guardian-bench-decisions-",
        pop=("EMAIL_URL",),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    created = []
    try:
        if os.environ.get("DATABASE_URL"):
            created = harness.postgres_databases("create", url=os.environ["DATABASE_URL"])
        harness.django_setup()
        harness.migrate()
        from django.core import mail
        from django.test import Client

        mail.outbox = []  # the fixtures' notices are delivered to the locmem backend

        print(f"database: {harness.database_version()}")
        print(f"machine:  {harness.machine()}")
        t = time.perf_counter()
        purpose, people = seed(args.warmup + args.n)
        print(f"setup:    {len(people)} parents in {time.perf_counter() - t:.0f}s")
        client = Client()
        for child, token in people[: args.warmup]:
            withdraw(client, child, token, purpose.code)
        if args.show_sql:
            from django.db import connections
            from django.test.utils import CaptureQueriesContext

            child, token = people.pop()
            with CaptureQueriesContext(connections["default"]) as ctx:
                withdraw(client, child, token, purpose.code)
            harness.print_queries("one withdrawal", [("default", q["sql"]) for q in ctx], 160)
            args.n -= 1
        import portal.parent

        decide = portal.parent.consent_decide
        in_service: list[float] = []

        def timed_decide(**kwargs):
            c = time.process_time()
            try:
                return decide(**kwargs)
            finally:
                in_service.append(time.process_time() - c)

        portal.parent.consent_decide = timed_decide  # the decision service, timed on its own
        cpu, wall = [], []
        profiler = cProfile.Profile() if args.profile else None
        load_before = harness.load_average()
        with harness.counting_queries() as queries:
            for child, token in people[args.warmup :]:
                c0, w0 = time.process_time(), time.perf_counter()
                if profiler:
                    profiler.enable()
                withdraw(client, child, token, purpose.code)
                if profiler:
                    profiler.disable()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
        per = {alias: n / args.n for alias, n in queries.items()}
        print(f"\n## {args.n} withdrawals through POST /api/v1/children/{{id}}/consents/")
        print(
            f"CPU per withdrawal:  median {statistics.median(cpu) * 1000:.1f} ms, "
            f"mean {statistics.fmean(cpu) * 1000:.1f} ms, "
            f"p95 {harness.percentile(cpu, 95) * 1000:.1f} ms"
        )
        print(
            f"  of which the decision service (consent_decide: rule, receipt, audit, erasure "
            f"opening, status refresh): median {statistics.median(in_service) * 1000:.1f} ms, "
            f"mean {statistics.fmean(in_service) * 1000:.1f} ms"
        )
        print(
            f"wall per withdrawal: median {statistics.median(wall) * 1000:.1f} ms, "
            f"p95 {harness.percentile(wall, 95) * 1000:.1f} ms"
        )
        print(
            f"queries per withdrawal: {per['default']:.1f} (main) + {per['keys']:.1f} (key store)"
        )
        print(f"load average before/after: {load_before} / {harness.load_average()}")
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(out.getvalue())
        return 0
    finally:
        harness.finish(var_dir, keep=False, databases=created or None)


if __name__ == "__main__":
    raise SystemExit(main())
