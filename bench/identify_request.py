#!/usr/bin/env python
"""One gate's identification as the gate's web process serves it (issue 17): CPU of the web
process and of its PostgreSQL backend, and round trips to PostgreSQL, per
``POST /api/v1/identify/``, against ``--templates`` templates.

Setup (not timed): one school, one purpose (gate_access), 20 children with consent and a
template (the gate's probes: each asks for one of them, as it is, so every call is a match and
writes its event), the rest of the templates in bulk (bench/faces.py's `populate`), an API key.
Each measurement then runs in a process of its own, as a gunicorn worker would: Django's WSGI
handler called directly (request_started and request_finished are sent, so the connection's
health check runs at each request as it does in gunicorn; django.test.Client would skip it),
the match index built by a first untimed call, then ``--calls`` identifications one after
another. Round trips are counted by PostgreSQL (pg_stat_database: each statement sent alone,
or each batch sent as one, is one transaction).

``--against PATH`` (a checkout of another commit, e.g. ``git worktree add /tmp/before HEAD~1``)
measures that code too, in turns with this one, ``--rounds`` times, on the same database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench_identify \\
      .venv/bin/python bench/identify_request.py [--templates 100000] [--calls 500] \\
      [--rounds 3] [--against /tmp/before]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness

PROBES = 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=500, help="timed calls per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", default="", help="a checkout of other code to compare")
    parser.add_argument("--profile", type=int, default=0, help="print this code's K top functions")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--code", default="", help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def seed(templates: int) -> dict:
    import numpy as np

    from bench.faces import populate
    from biometrics.services import template_create
    from consent.services import guardian_get_or_create
    from portal.auth import api_key_create

    school, purposes = harness.school_create("bench-identify", "Identify", ["gate_access"])
    rng = np.random.default_rng(23)
    probes = []
    for i in range(PROBES):
        parent = guardian_get_or_create(email=f"parent{i}@bench.example", name=f"Parent {i}")
        child = harness.child_with_consent(
            school, parent, [purposes["gate_access"]], external_id=f"G-{i:03d}", name=f"Gate {i}"
        )
        face = rng.normal(0, 0.12, 128)
        template_create(student=child, photo=None, embedding=face)
        probes.append([float(x) for x in face])
    populate(school, templates - PROBES, None)
    _, secret = api_key_create(school=school, scopes=["identify"])
    return {"api_key": secret, "probes": probes}


def xact_commits(database: str) -> int:
    with harness.postgres_connect(os.environ["DATABASE_URL"], admin=True) as admin:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        row = admin.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()
    return int(row[0])


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args) -> None:
    """In a process of its own: the calls, then one JSON line of figures."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    data = json.loads(Path(args.measure).read_text())
    handler = WSGIHandler()
    database = connection.settings_dict["NAME"]

    def call(n: int) -> None:
        body = json.dumps(
            {"purpose": "gate_access", "device": "Gate 1", "embedding": data["probes"][n % PROBES]}
        ).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/identify/",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Api-Key {data['api_key']}",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status = []
        chunks = handler(environ, lambda s, h, exc_info=None: status.append(s))
        answer = json.loads(b"".join(chunks))
        if not status[0].startswith("200") or not answer.get("match"):
            raise SystemExit(f"identify: {status[0]} {answer}")

    for n in range(PROBES):  # builds the index; every probe's rows warm
        call(n)
    time.sleep(1.1)  # this backend's statistics flushed at its next statement
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    time.sleep(0.2)
    commits = xact_commits(database)
    profiler = cProfile.Profile() if args.profile else None
    cpu, pg_before = time.process_time(), backend_cpu(pid)
    wall = []
    for n in range(args.calls):
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        call(n)
        if profiler:
            profiler.disable()
        wall.append(time.perf_counter() - t)
    cpu, pg = time.process_time() - cpu, backend_cpu(pid) - pg_before
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    time.sleep(1.1)
    with connection.cursor() as cursor:  # one more transaction, which flushes the statistics
        cursor.execute("SELECT 1")
    time.sleep(0.2)
    round_trips = (xact_commits(database) - commits - 1) / args.calls
    print(
        json.dumps(
            {
                "cpu_ms": cpu * 1000 / args.calls,
                "pg_ms": pg * 1000 / args.calls,
                "wall_ms": statistics.median(wall) * 1000,
                "round_trips": round_trips,
            }
        )
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.measure:
        harness.configure(var_dir=Path(args.var_dir))
        if args.code:
            sys.path.insert(0, args.code)
        harness.django_setup()
        measure(args)
        return 0
    if "bench" not in os.environ.get("DATABASE_URL", ""):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database whose name contains 'bench'")
    var_dir = harness.configure("guardian-bench-identify-")
    created = harness.postgres_databases("create", url=os.environ["DATABASE_URL"])
    try:
        harness.django_setup()
        harness.migrate()
        from django.db import connections

        print(f"database: {harness.database_version()}")
        print(f"machine:  {harness.machine()}, load average {harness.load_average()}")
        t = time.perf_counter()
        data_file = var_dir / "identify.json"
        data_file.write_text(json.dumps(seed(args.templates)))
        with connections["default"].cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"setup:    {args.templates:,} templates in {time.perf_counter() - t:.0f}s")

        connections.close_all()
        codes = [("this", str(harness.ROOT))] + (
            [("against", args.against)] if args.against else []
        )
        results: dict[str, list[dict]] = {name: [] for name, _ in codes}
        for round_ in range(args.rounds):
            for name, code in codes if round_ % 2 == 0 else codes[::-1]:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        str(data_file),
                        "--code",
                        code,
                        "--var-dir",
                        str(var_dir),
                        "--calls",
                        str(args.calls),
                        "--profile",
                        str(args.profile if name == "this" and not round_ else 0),
                    ],
                    cwd=code,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode:
                    raise SystemExit(f"{name}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}")
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                if args.profile and name == "this" and not round_:
                    print(out.stderr)
                r = results[name][-1]
                print(
                    f"round {round_ + 1} {name:8} CPU {r['cpu_ms']:.2f} ms, PostgreSQL "
                    f"{r['pg_ms']:.2f} ms, wall median {r['wall_ms']:.2f} ms, round trips "
                    f"{r['round_trips']:.2f}",
                    flush=True,
                )
        print(
            f"\n## POST /api/v1/identify/ at {args.templates:,} templates, {args.calls} calls "
            f"× {args.rounds} rounds (medians of the rounds)"
        )
        for name, code in codes:
            rows = results[name]
            print(
                f"{name:8} ({code}): web process CPU "
                f"{statistics.median(r['cpu_ms'] for r in rows):.2f} ms, its PostgreSQL backend "
                f"{statistics.median(r['pg_ms'] for r in rows):.2f} ms, wall "
                f"{statistics.median(r['wall_ms'] for r in rows):.2f} ms, round trips "
                f"{statistics.median(r['round_trips'] for r in rows):.2f} per identification"
            )
        print(f"load average at the end: {harness.load_average()}")
        return 0
    finally:
        harness.finish(var_dir, keep=False, databases=created)


if __name__ == "__main__":
    raise SystemExit(main())
