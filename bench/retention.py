#!/usr/bin/env python
"""Benchmark the recognition-event retention job on PostgreSQL against a plain batched DELETE.

One school (30-day event window), three purposes, 200 students; 2,000,000 recognition events
spread evenly over the last 60 days in time order (ids rise with ``at``, as in real life), every
student taking every 200th event: exactly 1,000,000 are older than the window at ``as_of``.
Rows are loaded with ``INSERT ... SELECT generate_series`` (FK triggers off and the secondary
indexes dropped for the load only, then rebuilt from their own definitions),
then ``VACUUM ANALYZE`` of the table, ``ANALYZE`` of the database (what autovacuum would have
done by then, even where autovacuum is off) and ``CHECKPOINT``.

Two purges (three with ``--with-fix``) delete the same 1,000,000 rows from the same 2,000,000 (the table is truncated and
reloaded identically before each):

* ``baseline`` – plain SQL in its own process: ``DELETE FROM biometrics_recognitionevent WHERE
  id IN (SELECT id FROM biometrics_recognitionevent WHERE at < cutoff ORDER BY id LIMIT 5000)``
  in a loop, each batch its own transaction (psycopg, no Django);
* ``product``  – ``biometrics.retention.retention_run("recognition_events", as_of=...)`` in its
  own process (its own connection), batches of ``EVENT_BATCH``.

``--rounds N`` (default 2) repeats the baseline/product pair; each ratio is taken against the
baseline of the same round and the median over rounds is reported, for wall time and for CPU
time (the purging process plus its PostgreSQL backend, read from ``/proc``: far steadier than
wall time when other work shares the machine). ``--with-fix`` adds a third purge, ``fix``: the
one-statement batch loop (``DELETE ... WHERE id IN (SELECT ... ORDER BY at LIMIT n)``, see
``fixed_job``) that an earlier analysis suggested and the job now uses itself.

For each: total time, batches, and the longest transaction three ways: as the code reports it
(the job's ``longest_transaction_ms``; the baseline times its own batches), by wrapping the
purging process's connection (first statement inside ``atomic`` to the end of ``COMMIT``), and
as seen by PostgreSQL (``pg_stat_activity.xact_start`` of the purging backend, sampled every
``--sample-ms``). Meanwhile the benchmark process requests the parent's child page
(``GET /children/<id>/``, a guardian logged in through ``django.test.Client``; the child has
10,000 events, half of them purged) every ``--interval-ms`` and reports median / p95 / max
latency during each purge against at rest.

Targets (issue): product total <= 1.5 x baseline; longest transaction <= 500 ms. Exits 1 when a
target is missed or a purge deletes the wrong rows, so it can serve as a CI check.

Usage (from the repository root; PostgreSQL only)::

    .venv/bin/python bench/retention.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench_retention \\
        .venv/bin/python bench/retention.py [--rounds 2] [--with-fix] [--events 2000000]

``DATABASE_URL`` defaults to the URL above. The database and its ``<name>_keys`` twin (or
``KEYSTORE_DATABASE_URL``) are dropped if present, created, migrated, and dropped at the end
(``--keep`` keeps them); their names must contain "bench". Media and broker go to a temporary
``GUARDIAN_VAR_DIR``, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/guardian_bench_retention"
APP_NAME = "guardian-bench-purge"
TABLE = "biometrics_recognitionevent"
WINDOW_DAYS = 30
SPAN_DAYS = 60
BASELINE_BATCH = 5000
TARGET_RATIO = 1.5
TARGET_LONGEST_MS = 500.0
REST_REQUESTS = 30
WARMUPS = 3
PURPOSES = ["gate_access", "attendance", "library"]
KINDS = ["baseline", "product", "fix"]
DEVICES = ["Main gate camera", "Side gate camera", "Entrance hall camera", "Library desk camera"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=2_000_000, help="events loaded (even; default 2000000)"
    )
    parser.add_argument("--students", type=int, default=200, help="students (default 200)")
    parser.add_argument(
        "--interval-ms", type=int, default=200, help="child-page request interval (default 200)"
    )
    parser.add_argument(
        "--sample-ms", type=int, default=20, help="pg_stat_activity sampling (default 20)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="baseline/product pairs, alternating (default 2)"
    )
    parser.add_argument(
        "--with-fix",
        action="store_true",
        help="also run the one-statement batch loop once suggested in the README (now the job's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and var dir")
    # Internal: run one purge in this (child) process and print a JSON result.
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.events < 2 or args.events % 2:
        parser.error("--events must be even and at least 2")
    if args.students < 1:
        parser.error("--students must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def configure_environment(var_dir: Path | None = None) -> Path:
    """Fresh temporary var dir (unless given); PostgreSQL from DATABASE_URL (default above)."""
    var_dir = harness.configure(
        "guardian-bench-retention-", var_dir=var_dir, database_url=DEFAULT_URL
    )
    if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench/retention.py runs on PostgreSQL only (DATABASE_URL=postgres://...)")
    return var_dir


def pg_connect(*, app: str | None = None):
    """A plain psycopg connection (autocommit) to the main database."""
    from django.conf import settings

    return harness.postgres_connect(settings.DATABASES["default"], app=app)


def build_world(n_students: int):
    """School (30-day window), purposes, students; one guardian with consent for child 0."""
    from consent.models import Student
    from consent.services import guardian_get_or_create

    school, purposes = harness.school_create(
        "bench-retention",
        "Retention Benchmark School",
        PURPOSES,
        event_window_days=WINDOW_DAYS,
    )
    purposes = list(purposes.values())
    students = Student.objects.bulk_create(
        Student(school=school, external_id=f"B{i:05d}", name=f"Student {i}", class_name="Year 5")
        for i in range(n_students)
    )
    parent = guardian_get_or_create(email="parent@bench.example", name="Bench Parent")
    child = students[0]
    harness.consent_for(child, parent, purposes)
    return school, purposes, students, parent, child


def load_events(students, purposes, n_events: int, as_of: datetime) -> float:
    """Truncate and (re)load the events table identically; returns seconds (incl. VACUUM)."""
    started = time.perf_counter()
    step = timedelta(days=SPAN_DAYS) / n_events
    first = as_of - timedelta(days=SPAN_DAYS)
    with pg_connect() as conn:
        conn.execute(f"TRUNCATE {TABLE}")
        # Load without the secondary indexes (Django's FK indexes and the model's own), then
        # rebuild each from its own definition: same indexes, built in seconds, not minutes.
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "JOIN pg_index x ON x.indexrelid = (quote_ident(i.indexname))::regclass "
            "WHERE i.tablename = %s AND NOT x.indisprimary AND NOT x.indisunique",
            [TABLE],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("SET session_replication_role = replica")  # no FK triggers for the load
        conn.execute(
            f"""
            INSERT INTO {TABLE} (id, student_id, purpose_id, device, distance, at)
            SELECT i,
                   (%(students)s::uuid[])[1 + i %% %(n_students)s],
                   (%(purposes)s::bigint[])[1 + i %% %(n_purposes)s],
                   (%(devices)s::text[])[1 + i %% %(n_devices)s],
                   0.25 + (i %% 300) / 1000.0,
                   %(first)s + (i - 0.5) * %(step)s::interval
            FROM generate_series(1, %(n)s) AS i
            """,
            {
                "students": [s.pk for s in students],
                "n_students": len(students),
                "purposes": [p.pk for p in purposes],
                "n_purposes": len(purposes),
                "devices": DEVICES,
                "n_devices": len(DEVICES),
                "first": first,
                "step": step,
                "n": n_events,
            },
        )
        conn.execute("RESET session_replication_role")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s)", [n_events])
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        # Statistics for the other tables too (students, schools...): what autovacuum would
        # have done by then, so the planner does not guess one row for a fresh table.
        conn.execute("ANALYZE")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def table_counts(as_of: datetime) -> tuple[int, int]:
    cutoff = as_of - timedelta(days=WINDOW_DAYS)
    with pg_connect() as conn:
        total, old = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE at < %s) FROM {TABLE}", [cutoff]
        ).fetchone()
    return total, old


# --- the purging process ---------------------------------------------------------------------


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a PostgreSQL backend on this machine, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the server runs elsewhere
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by this process and by its PostgreSQL backend between start/stop:
    far less sensitive than wall time to other work on a shared machine."""

    def __init__(self, backend_pid: int):
        self.pid = backend_pid

    def start(self):
        self.client = time.process_time()
        self.server = backend_cpu_seconds(self.pid)

    def stop(self) -> dict:
        server = backend_cpu_seconds(self.pid)
        return {
            "client_cpu": time.process_time() - self.client,
            "server_cpu": None if server is None or self.server is None else server - self.server,
        }


def worker_baseline(as_of: datetime) -> dict:
    """Plain batched SQL DELETE, each batch in its own transaction."""
    cutoff = as_of - timedelta(days=WINDOW_DAYS)
    batches = []
    deleted = 0
    with pg_connect(app=APP_NAME) as conn:
        meter = CpuMeter(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        meter.start()
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            with conn.transaction():
                cursor = conn.execute(
                    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE at < %s "
                    f"ORDER BY id LIMIT {BASELINE_BATCH})",
                    [cutoff],
                )
                n = cursor.rowcount
            batches.append((time.perf_counter() - t0) * 1000)
            if not n:
                break
            deleted += n
        total = time.perf_counter() - started
        cpu = meter.stop()
    return {
        "seconds": total,
        **cpu,
        "deleted": deleted,
        "batches": len(batches) - 1,
        "reported_longest_ms": max(batches),
        "wrapped_longest_ms": max(batches),
        "transactions_ms": batches,
    }


def fixed_job(*, as_of: datetime) -> dict:
    """The batch loop the 2026-11-28 analysis suggested for job_recognition_events, kept for
    comparison: each batch a single ``DELETE ... WHERE id IN (SELECT ... ORDER BY at LIMIT n)``
    statement, ordered by ``at`` (a bounded range of the (at) index, so the last, empty batch
    ends at once). The job has done the same since, so ``fix`` and ``product`` should measure
    alike; a difference between them is the job's own bookkeeping (its audit record)."""
    from django.db import transaction

    from biometrics.models import RecognitionEvent
    from biometrics.retention import EVENT_BATCH
    from consent.models import School

    deleted = 0
    longest = 0.0
    started_all = time.monotonic()
    for school in School.objects.all():
        cutoff = as_of - timedelta(days=school.event_window_days)
        old = RecognitionEvent.objects.filter(student__school=school, at__lt=cutoff)
        while True:
            started = time.monotonic()
            with transaction.atomic():
                batch = old.order_by("at").values("pk")[:EVENT_BATCH]
                n = RecognitionEvent.objects.filter(pk__in=batch).delete()[0]
            longest = max(longest, time.monotonic() - started)
            if not n:
                break
            deleted += n
    return {
        "events_deleted": deleted,
        "longest_transaction_ms": round(longest * 1000, 1),
        "seconds": round(time.monotonic() - started_all, 3),
    }


def worker_django(as_of: datetime, variant: str) -> dict:
    """The product's job ("product": retention_run) or its one-change variant ("fix"), with its
    transactions and statements timed from outside the job code."""
    from django.db import connection

    from biometrics.retention import EVENT_BATCH, retention_run

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET application_name = %s", [APP_NAME])
        cursor.execute("SELECT pg_backend_pid()")
        meter = CpuMeter(cursor.fetchone()[0])
    spans: list[float] = []
    span_sql: list[str] = []  # the first statement of each transaction
    current = {"start": None}
    statements = {"select": [], "delete": [], "commit": []}
    first_delete = []

    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        if connection.in_atomic_block and current["start"] is None:
            current["start"] = started
            span_sql.append(sql[:70])
        try:
            return execute(sql, params, many, context)
        finally:
            kind = sql.lstrip()[:6].lower()
            if kind in statements and TABLE in sql.split("WHERE")[0]:
                statements[kind].append((time.perf_counter() - started) * 1000)
                if kind == "delete" and not first_delete:
                    first_delete.append(sql if len(sql) < 600 else sql[:300] + " ... " + sql[-60:])

    real_commit = connection.commit

    def timed_commit():
        started = time.perf_counter()
        try:
            return real_commit()
        finally:
            statements["commit"].append((time.perf_counter() - started) * 1000)
            if current["start"] is not None:
                spans.append((time.perf_counter() - current["start"]) * 1000)
                current["start"] = None

    connection.commit = timed_commit  # Atomic.__exit__ calls connection.commit()
    with connection.execute_wrapper(wrapper):
        meter.start()
        started = time.perf_counter()
        if variant == "product":
            counts = retention_run("recognition_events", as_of=as_of).counts
        else:
            counts = fixed_job(as_of=as_of)
        total = time.perf_counter() - started
        cpu = meter.stop()
    return {
        "seconds": total,
        **cpu,
        "deleted": counts["events_deleted"],
        "job_seconds": counts["seconds"],
        "batches": math.ceil(counts["events_deleted"] / EVENT_BATCH),
        "reported_longest_ms": counts["longest_transaction_ms"],
        # Every transaction of the run: the batches (and, for the product, its audit record).
        "wrapped_longest_ms": max(spans) if spans else 0.0,
        "wrapped_longest_at": (
            f"transaction {spans.index(max(spans)) + 1} of {len(spans)}, starting with "
            f"{span_sql[spans.index(max(spans))]}"
            if spans
            else ""
        ),
        "transactions_ms": spans,
        "statements_ms": {k: statistics.median(v) for k, v in statements.items() if v},
        "delete_sql": first_delete[0] if first_delete else "",
    }


def worker_main(args) -> int:
    configure_environment(Path(os.environ["GUARDIAN_VAR_DIR"]))
    harness.django_setup()
    as_of = datetime.fromisoformat(args.as_of)
    if args.worker == "baseline":
        result = worker_baseline(as_of)
    else:
        result = worker_django(as_of, args.worker)
    print(json.dumps(result))
    return 0


# --- the benchmark process -------------------------------------------------------------------


class XactMonitor(threading.Thread):
    """Samples the purging backend's open-transaction age from pg_stat_activity."""

    def __init__(self, every_ms: int):
        super().__init__(daemon=True)
        self.every = every_ms / 1000
        self.stop = threading.Event()
        self.longest_ms = 0.0
        self.samples = 0

    def run(self):
        with pg_connect(app="guardian-bench-monitor") as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT max(extract(epoch FROM clock_timestamp() - xact_start)) * 1000 "
                    "FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL",
                    [APP_NAME],
                ).fetchone()
                self.samples += 1
                if row[0] is not None:
                    self.longest_ms = max(self.longest_ms, float(row[0]))
                time.sleep(self.every)


def page_request(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"child page: HTTP {response.status_code}")
    return ms


def latencies_at_rest(client, url: str, interval: float) -> list[float]:
    for _ in range(WARMUPS):
        page_request(client, url)
    times = []
    for _ in range(REST_REQUESTS):
        times.append(page_request(client, url))
        time.sleep(max(0.0, interval - times[-1] / 1000))
    return times


def purge(kind: str, as_of: datetime, client, url: str, args) -> dict:
    """Run one purge in a child process; request the child page meanwhile."""
    monitor = XactMonitor(args.sample_ms)
    monitor.start()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--as-of",
        as_of.isoformat(),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=harness.ROOT)
    interval = args.interval_ms / 1000
    times = []
    time.sleep(interval)
    while process.poll() is None:
        times.append(page_request(client, url))
        time.sleep(max(0.0, interval - times[-1] / 1000))
    out, _ = process.communicate()
    wall = time.perf_counter() - started
    monitor.stop.set()
    monitor.join()
    if process.returncode:
        raise SystemExit(f"{kind} purge failed (exit {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(kind=kind, wall=wall, pages=times, observed_longest_ms=monitor.longest_ms)
    return result


def explain(as_of: datetime, kind: str) -> str:
    """The plan of one batch's SELECT (product: the job's own queryset)."""
    cutoff = as_of - timedelta(days=WINDOW_DAYS)
    if kind == "product":
        from biometrics.models import RecognitionEvent
        from biometrics.retention import EVENT_BATCH
        from consent.models import School

        school = School.objects.get(slug="bench-retention")
        old = RecognitionEvent.objects.filter(student__school=school, at__lt=cutoff)
        return old.order_by("pk").values_list("pk", flat=True)[:EVENT_BATCH].explain()
    with pg_connect() as conn:
        rows = conn.execute(
            f"EXPLAIN DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE at < %s "
            f"ORDER BY id LIMIT {BASELINE_BATCH})",
            [cutoff],
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    var_dir = configure_environment()
    harness.django_setup()
    created = harness.postgres_databases("create")
    try:
        return run(args, created)
    finally:
        harness.finish(var_dir, keep=args.keep, databases=created)


def run(args, created: list[str]) -> int:
    from django.conf import settings
    from django.test import Client
    from django.utils import timezone

    total_started = time.perf_counter()
    harness.migrate()
    with pg_connect() as conn:
        version = conn.execute("SELECT version()").fetchone()[0].split(",")[0]
        autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
    print(
        f"database:  {version}  ({settings.DATABASES['default']['NAME']}), "
        f"autovacuum {autovacuum}, shared_buffers {shared_buffers}"
    )
    print(f"created:   {', '.join(created)} (dropped at the end)")
    print(f"machine:   {harness.machine()}")
    _, purposes, students, parent, child = build_world(args.students)
    as_of = timezone.now().replace(microsecond=0)
    client = Client()
    client.force_login(parent.user)
    url = f"/children/{child.pk}/"
    interval = args.interval_ms / 1000

    kinds = KINDS if args.with_fix else KINDS[:2]
    results = []
    rest = None
    problems = []
    for round_ in range(1, args.rounds + 1):
        for kind in kinds:
            seconds = load_events(students, purposes, args.events, as_of)
            total, old = table_counts(as_of)
            print(
                f"\nloaded:    {total} events ({old} older than {WINDOW_DAYS} days) in "
                f"{seconds:.1f}s (TRUNCATE, INSERT ... SELECT, indexes, VACUUM ANALYZE, CHECKPOINT)"
            )
            if old != args.events // 2 or total != args.events:
                raise SystemExit("the load did not give the expected rows")
            if rest is None:
                rest = latencies_at_rest(client, url, interval)
            if round_ == 1 and kind != "fix":
                print(f"{kind} plan of one batch:")
                print("  " + explain(as_of, kind).replace("\n", "\n  "))
            result = purge(kind, as_of, client, url, args)
            result["round"] = round_
            total_after, old_after = table_counts(as_of)
            if result["deleted"] != old or old_after or total_after != total - old:
                problems.append(
                    f"{kind} deleted {result['deleted']}, left {old_after} old of {total_after}"
                )
            results.append(result)
            print(f"{kind}:  deleted {result['deleted']} in {result['seconds']:.1f}s")
            if round_ == 1 and result.get("delete_sql"):
                print(f"  its first DELETE: {result['delete_sql']}")

    def of(kind):
        return [r for r in results if r["kind"] == kind]

    def paired(kind, key):
        """Per round, this kind's figure over the baseline's of the same round; the median."""
        ratios = []
        for round_ in range(1, args.rounds + 1):
            mine = next(r for r in of(kind) if r["round"] == round_)
            base = next(r for r in of("baseline") if r["round"] == round_)
            if mine[key] is None or base[key] is None:
                return None
            ratios.append(mine[key] / base[key])
        return statistics.median(ratios)

    for r in results:
        r["cpu"] = None if r["server_cpu"] is None else r["client_cpu"] + r["server_cpu"]
        base = next(b for b in of("baseline") if b["round"] == r["round"])
        r["ratio"] = r["seconds"] / base["seconds"]
        r["cpu_ratio"] = None if r["cpu"] is None or not base["cpu"] else r["cpu"] / base["cpu"]
    print(
        f"\npurging {args.events // 2} of {args.events} events ({args.students} students), "
        f"{args.rounds} round(s); child page every {args.interval_ms} ms during each purge; "
        f"pg_stat_activity sampled every {args.sample_ms} ms. Ratios are against the baseline "
        f"of the same round; CPU = purging process + its PostgreSQL backend\n"
    )
    print(
        f"{'run':<11} {'total s':>8} {'ratio':>6} {'CPU s':>6} {'ratio':>6} {'batches':>8} "
        f"{'rows/s':>7} {'longest tx ms: reported':>24} {'wrapped':>8} {'pg_stat':>8} "
        f"{'median tx':>10} {'p95 tx':>7}"
    )
    for r in results:
        tx = r["transactions_ms"]
        label = r["kind"] + (f" #{r['round']}" if args.rounds > 1 else "")
        cpu = "-" if r["cpu"] is None else f"{r['cpu']:.1f}"
        cpu_ratio = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        print(
            f"{label:<11} {r['seconds']:>8.1f} {r['ratio']:>6.2f} {cpu:>6} {cpu_ratio:>6} "
            f"{r['batches']:>8} {r['deleted'] / r['seconds']:>7.0f} "
            f"{r['reported_longest_ms']:>24.1f} {r['wrapped_longest_ms']:>8.1f} "
            f"{r['observed_longest_ms']:>8.1f} {statistics.median(tx):>10.1f} "
            f"{harness.percentile(tx, 95):>7.1f}"
        )
    for kind in kinds[1:]:
        for r in of(kind):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in r["statements_ms"].items())
            print(f"{kind} #{r['round']}, median per batch (ms, wrapped): {parts}")
            print(f"    longest wrapped: {r['wrapped_longest_at']}")
    print(f"\nchild page /children/<id>/ latency, ms ({REST_REQUESTS} at rest)\n")
    print(f"{'when':<16} {'requests':>8} {'median':>8} {'p95':>8} {'max':>8}")
    for label, times in [
        ("at rest", rest),
        *((f"during {kind}", [t for r in of(kind) for t in r["pages"]]) for kind in kinds),
    ]:
        print(
            f"{label:<16} {len(times):>8} {statistics.median(times):>8.1f} "
            f"{harness.percentile(times, 95):>8.1f} {max(times):>8.1f}"
        )
    ok = not problems
    print()
    for kind in kinds[1:]:
        ratio = paired(kind, "seconds")
        cpu_ratio = paired(kind, "cpu")
        longest = max(
            max(r["reported_longest_ms"], r["wrapped_longest_ms"], r["observed_longest_ms"])
            for r in of(kind)
        )
        ok_ratio = ratio <= TARGET_RATIO
        ok_longest = longest <= TARGET_LONGEST_MS
        cpu_text = "" if cpu_ratio is None else f" (CPU {cpu_ratio:.2f}x)"
        print(
            f"{kind:<8} / baseline: {ratio:.2f}x{cpu_text} (target <= {TARGET_RATIO}x): "
            f"{'met' if ok_ratio else 'MISSED'}; longest transaction {longest:.1f} ms "
            f"(target <= {TARGET_LONGEST_MS:.0f} ms): {'met' if ok_longest else 'MISSED'}"
        )
        if kind == "product":
            ok = ok and ok_ratio and ok_longest
    for problem in problems:
        print(f"WRONG ANSWER: {problem}")
    print(f"total:     {time.perf_counter() - total_started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
