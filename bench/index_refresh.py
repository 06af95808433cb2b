#!/usr/bin/env python
"""What an erasure costs every process that holds the school's match index (issue 17): the
index brought up to date by the change log (the children named in it: their columns dropped,
their templates read again) against comparing every template id of the school (what each
refresh did before the log), in the same run, taken in turn.

Setup (not timed): one school with ``--templates`` encrypted templates (bench/faces.py
``populate``), the index built once. Then ``--rounds`` times: ``--batch`` children's templates
are deleted and the school's index moved as the erasure's database step does
(``match_index_bump`` naming them), and a copy of the index is brought up to date both ways
(log, then compare; the order alternates): CPU and wall time of each, and both results checked
equal (the same template ids).

    .venv/bin/python bench/index_refresh.py [--templates 100000] [--batch 1] [--rounds 10]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench_refresh .venv/bin/python bench/index_refresh.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import faces
import harness


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1, help="children erased per batch")
    parser.add_argument("--rounds", type=int, default=10)
    return parser.parse_args(argv)


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = harness.configure("guardian-bench-refresh-", pop=("EMAIL_URL",))
    created = []
    try:
        if os.environ.get("DATABASE_URL"):
            created = harness.postgres_databases("create", url=os.environ["DATABASE_URL"])
        harness.django_setup()
        harness.migrate()
        from django.db import transaction
        from django.utils import timezone

        from biometrics import matching
        from biometrics.models import FaceTemplate

        print(f"database: {harness.database_version()}")
        print(f"machine:  {harness.machine()}, load average {harness.load_average()}")
        school, _ = harness.school_create("bench-refresh", "Refresh", ["gate_access"])
        t = time.perf_counter()
        faces.populate(school, args.templates, None)
        index, build_cpu, _ = timed(lambda: matching.match_index_for(school.pk))
        print(
            f"setup: {args.templates:,} templates in {time.perf_counter() - t:.0f}s; "
            f"index built in {build_cpu / 1000:.1f} s of CPU"
        )
        students = iter(
            FaceTemplate.objects.filter(student__school=school).values_list("student_id", flat=True)
        )
        by_log, by_compare = [], []
        for round_ in range(args.rounds):
            gone = [next(students) for _ in range(args.batch)]
            with transaction.atomic():
                FaceTemplate.objects.filter(student_id__in=gone).delete()
                matching.match_index_bump(school.pk, gone)
            version = matching.match_index_version(school.pk)
            ways = [
                (
                    "log",
                    by_log,
                    lambda i=index, v=version: matching._refreshed(i, school.pk, v),
                ),
                (
                    "compare",
                    by_compare,
                    lambda i=index, v=version: matching._compared(i, school.pk, v, timezone.now()),
                ),
            ]
            results = {}
            for name, times, fn in ways if round_ % 2 == 0 else reversed(ways):
                results[name], cpu, wall = timed(fn)
                times.append((cpu, wall))
            assert list(results["log"].template_ids) == list(results["compare"].template_ids)
            assert not set(gone) & set(results["log"].codes)
            index = results["log"]
        print(
            f"\n## One erasure batch of {args.batch} at {args.templates:,} templates, "
            f"{args.rounds} rounds (each process that holds the index pays this)"
        )
        for name, times in (("change log", by_log), ("every id compared", by_compare)):
            cpu = [c for c, _ in times]
            wall = [w for _, w in times]
            print(
                f"  {name:<18} CPU median {statistics.median(cpu):7.1f} ms "
                f"(p95 {harness.percentile(cpu, 95):7.1f}), wall median "
                f"{statistics.median(wall):7.1f} ms"
            )
        ratio = statistics.median(c for c, _ in by_compare) / statistics.median(
            c for c, _ in by_log
        )
        print(f"  ratio (CPU, compare / log): {ratio:.1f}×")
        print(f"load average after: {harness.load_average()}")
        return 0
    finally:
        harness.finish(var_dir, keep=False, databases=created or None)


if __name__ == "__main__":
    raise SystemExit(main())
