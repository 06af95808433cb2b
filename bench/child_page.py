#!/usr/bin/env python
"""Benchmark the child page: SQL queries stay constant as recognition events grow.

Measures the parent's child page (HTML, ``GET /children/<id>/``) and its API twin
(``GET /api/v1/children/<id>/``), both built by ``biometrics.selectors.held_data``:

1. one school (three purposes with notices, enabled; one holder), one guardian, one child with
   consent granted and one real enrolled photo/template (Grace Hopper, through face_recognition),
   and another child (another guardian) with ``--events`` recognition events, so the events
   table is never trivially small;
2. the measured child gets 10 events: queries per request and server time are measured;
3. its events are bulk-inserted up to ``--events`` (batches of 10,000 over the last 30 days,
   several devices and purposes) and everything is measured again.

It prints a table and exits 1 when a query count differs between the two sizes (or a response is
wrong), so it can serve as a CI check.

Usage (from the repository root)::

    .venv/bin/python bench/child_page.py [--events 100000] [--requests 30]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench .venv/bin/python bench/child_page.py

By default everything lives in a fresh temporary ``GUARDIAN_VAR_DIR`` (SQLite databases, media,
broker), deleted afterwards, so the demo's and the tests' data are never touched. With
``DATABASE_URL`` the main database (and its ``<name>_keys`` key store, or
``KEYSTORE_DATABASE_URL``) is created if missing; each run adds its own school and first deletes
the recognition events of earlier benchmark runs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = 10
BATCH = 10_000
WARMUPS = 3
SLUG_PREFIX = "bench-child-page-"
DEVICES = {
    "gate_access": ["Main gate camera", "Side gate camera"],
    "attendance": ["Entrance hall camera", "Year 5 corridor camera"],
    "library": ["Library desk camera"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="events for the large run, and for the other child (default 100000)",
    )
    parser.add_argument(
        "--requests", type=int, default=30, help="timed requests per endpoint and size (default 30)"
    )
    parser.add_argument(
        "--show-sql", action="store_true", help="print every query of one request of each kind"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary GUARDIAN_VAR_DIR afterwards"
    )
    args = parser.parse_args(argv)
    if args.events <= SMALL:
        parser.error(f"--events must be more than {SMALL}")
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def configure_environment() -> Path:
    """Point the settings at a fresh temporary var dir; keep only DATABASE_URL from outside."""
    var_dir = Path(tempfile.mkdtemp(prefix="guardian-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["GUARDIAN_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_DEBUG"] = "0"
    # Everything else the settings read from the environment would be somebody else's data.
    for name in ("MEDIA_ROOT", "CELERY_BROKER_URL", "REDIS_MATCH_CACHE_URL", "CACHE_URL"):
        os.environ.pop(name, None)
    if not os.environ.get("DATABASE_URL"):
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("KEYSTORE_DATABASE_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return var_dir


def postgres_create_missing() -> list[str]:
    """On PostgreSQL, create the main and key-store databases named by the settings if missing."""
    from django.conf import settings  # noqa: PLC0415

    created = []
    for alias in ("default", "keys"):
        db = settings.DATABASES[alias]
        if db["ENGINE"] != "django.db.backends.postgresql":
            continue
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        params = {
            "dbname": "postgres",
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "host": db.get("HOST") or None,
            "port": db.get("PORT") or None,
        }
        with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                created.append(db["NAME"])
    return created


def migrate() -> None:
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", database="default", interactive=False, verbosity=0)
    call_command("migrate", database="keys", interactive=False, verbosity=0)


def forget_earlier_runs() -> int:
    """Delete the recognition events earlier benchmark runs left (shared PostgreSQL database)."""
    from biometrics.models import RecognitionEvent  # noqa: PLC0415

    deleted, _ = RecognitionEvent.objects.filter(
        student__school__slug__startswith=SLUG_PREFIX
    ).delete()
    return deleted


def build_world(run_id: str):
    """The school, the guardian, the measured child (consent + real template), another child."""
    from biometrics import demo_photos  # noqa: PLC0415
    from biometrics.access import access_record  # noqa: PLC0415
    from biometrics.models import FaceTemplate, Holder, TemplateCopy  # noqa: PLC0415
    from biometrics.services import photo_enrol  # noqa: PLC0415
    from consent.actors import Actor  # noqa: PLC0415
    from consent.models import Decision, Method, Purpose, School  # noqa: PLC0415
    from consent.services import (  # noqa: PLC0415
        consent_decide,
        guardian_get_or_create,
        guardianship_link,
        notice_publish,
        student_create,
    )

    actor = Actor.system("bench")
    school = School.objects.create(
        slug=f"{SLUG_PREFIX}{run_id}",
        name="Benchmark Primary School",
        dpo_name="Dana Officer",
        dpo_email="dpo@bench.example",
    )
    purposes = {}
    for code in DEVICES:
        purpose = Purpose.objects.create(
            school=school,
            code=code,
            name=code.replace("_", " ").title(),
            description=f"Uses the face for {code}.",
            alternative="A card instead.",
            dpia_reference=f"DPIA-{code}",
        )
        notice_publish(purpose=purpose, text=f"Notice for {code}, version 1.", actor=actor)
        purpose.enabled = True
        purpose.save(update_fields=["enabled"])
        purposes[code] = purpose

    parent = guardian_get_or_create(email=f"parent.{run_id}@bench.example", name="Bench Parent")
    other_parent = guardian_get_or_create(
        email=f"other.{run_id}@bench.example", name="Other Parent"
    )
    granted = [purposes["gate_access"], purposes["attendance"]]

    def child(name: str, guardian):
        student = student_create(
            school=school,
            external_id=f"{name.upper()}-{run_id}",
            name=f"{name} Bench",
            class_name="Year 5",
            actor=actor,
        )
        guardianship_link(guardian=guardian, student=student, notified_by="email", actor=actor)
        for purpose in granted:
            consent_decide(
                student=student,
                purpose=purpose,
                guardian=guardian,
                decision=Decision.GRANT,
                notice_version=purpose.current_notice.version,
                method=Method.WEB,
                actor=actor,
            )
        return student

    measured = child("Grace", parent)
    other = child("Ada", other_parent)
    photo_enrol(
        student=measured,
        data=demo_photos.grace_hopper(),
        actor=actor,
        source="bench",
        process_now=True,
    )
    template = FaceTemplate.objects.get(student=measured)
    # A holder with a stored copy, so "where it is held" lists an outside system too. Created
    # after enrolment, so no push to a real holder is queued.
    holder = Holder.objects.create(
        school=school,
        name="Gate controller",
        base_url="http://127.0.0.1:9/",
        secret="bench",
    )
    TemplateCopy.objects.create(template=template, holder=holder, status=TemplateCopy.Status.STORED)
    # A few entries in "who looked at this data".
    for action in ("biometrics.photo_viewed", "biometrics.template_viewed"):
        access_record(student=measured, actor=Actor.guardian(parent), action=action, data={})
    return parent, measured, other, granted


def add_events(student, purposes, count: int, rng: random.Random) -> float:
    """Bulk-insert `count` recognition events over the last 30 days; returns seconds taken."""
    from django.db import transaction  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from biometrics.models import RecognitionEvent  # noqa: PLC0415

    started = time.perf_counter()
    now = timezone.now()
    window = 30 * 24 * 3600
    left = count
    while left:
        size = min(BATCH, left)
        rows = []
        for _ in range(size):
            purpose = purposes[rng.randrange(len(purposes))]
            rows.append(
                RecognitionEvent(
                    student=student,
                    purpose=purpose,
                    device=rng.choice(DEVICES[purpose.code]),
                    distance=round(rng.uniform(0.25, 0.55), 4),
                    at=now - timedelta(seconds=rng.uniform(60, window)),
                )
            )
        with transaction.atomic():
            RecognitionEvent.objects.bulk_create(rows, batch_size=BATCH)
        left -= size
    return time.perf_counter() - started


def settle_statistics() -> None:
    """PostgreSQL: what autovacuum would do soon after such inserts, before timing starts."""
    from django.db import connection  # noqa: PLC0415

    from biometrics.models import RecognitionEvent  # noqa: PLC0415

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'VACUUM ANALYZE "{RecognitionEvent._meta.db_table}"')


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def captured(client, url: str):
    """One request with every query on both databases recorded: (response, [(alias, sql)])."""
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    with ExitStack() as stack:
        contexts = {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in ("default", "keys")
        }
        response = client.get(url)
    queries = [(alias, q["sql"]) for alias, ctx in contexts.items() for q in ctx.captured_queries]
    return response, queries


def check(response, kind: str, events: int) -> str | None:
    """The answer is the child page and it shows `events` recognition events."""
    if response.status_code != 200:
        return f"{kind}: HTTP {response.status_code}"
    if kind == "page":
        marker = f'data-count="events">{events}<'
        if marker not in response.content.decode():
            return f"page: {marker!r} not found"
    else:
        got = response.json()["recognition_events"]["count"]
        if got != events:
            return f"api: recognition_events.count is {got}, expected {events}"
    return None


def measure(client, urls: dict[str, str], events: int, requests: int) -> dict:
    result = {}
    for kind, url in urls.items():
        for _ in range(WARMUPS):
            client.get(url)
        response, queries = captured(client, url)
        problem = check(response, kind, events)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                problem = problem or f"{kind}: HTTP {response.status_code}"
        result[kind] = {
            "queries": queries,
            "median": statistics.median(times),
            "p95": percentile(times, 95),
            "problem": problem,
        }
    return result


def print_queries(title: str, queries) -> None:
    print(f"\n{title} ({len(queries)} queries):")
    for i, (alias, text) in enumerate(queries, 1):
        print(f"  {i:2}. [{alias}] {text}")


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = configure_environment()
    try:
        return run(args, var_dir)
    finally:
        if args.keep:
            print(f"\nkept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(args, var_dir: Path) -> int:
    import django  # noqa: PLC0415

    django.setup()
    from django.conf import settings  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415

    from biometrics.models import RecognitionEvent  # noqa: PLC0415

    started = time.perf_counter()
    created = postgres_create_missing()
    migrate()
    earlier = forget_earlier_runs()
    with connection.cursor() as cursor:
        version = (
            cursor.execute("SELECT version()").fetchone()[0].split(",")[0]
            if connection.vendor == "postgresql"
            else "SQLite " + cursor.execute("SELECT sqlite_version()").fetchone()[0]
        )
    db = settings.DATABASES["default"]
    print(f"database:  {version}  ({db['NAME']})")
    if created:
        print(f"created:   {', '.join(created)}")
    if earlier:
        print(f"deleted {earlier} events left by earlier benchmark runs")
    print(
        f"machine:   {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Django {django.get_version()}"
    )
    print(f"var dir:   {var_dir}")

    rng = random.Random(20261128)
    run_id = uuid.uuid4().hex[:8]
    parent, child, other, purposes = build_world(run_id)
    print(f"setup:     {time.perf_counter() - started:.1f}s (school, consent, real enrolment)")
    seconds = add_events(other, purposes, args.events, rng)
    print(f"inserted:  {args.events} events for another child in {seconds:.1f}s")
    add_events(child, purposes, SMALL, rng)
    settle_statistics()

    client = Client()
    client.force_login(parent.user)
    urls = {"page": f"/children/{child.pk}/", "api": f"/api/v1/children/{child.pk}/"}

    results = {SMALL: measure(client, urls, SMALL, args.requests)}
    seconds = add_events(child, purposes, args.events - SMALL, rng)
    settle_statistics()
    print(f"inserted:  {args.events - SMALL} more events for the measured child in {seconds:.1f}s")
    results[args.events] = measure(client, urls, args.events, args.requests)
    total_events = RecognitionEvent.objects.count()

    print(
        f"\nchild page, {args.requests} timed requests per row after {WARMUPS} warm-ups; "
        f"events table: {total_events} rows\n"
    )
    print(
        f"{'events':<9} {'page queries':>12} {'api queries':>12} {'page median ms':>15} "
        f"{'page p95 ms':>12} {'api median ms':>14} {'api p95 ms':>11}"
    )
    for events, r in results.items():
        print(
            f"{events:<9} {len(r['page']['queries']):>12} {len(r['api']['queries']):>12} "
            f"{r['page']['median']:>15.1f} {r['page']['p95']:>12.1f} "
            f"{r['api']['median']:>14.1f} {r['api']['p95']:>11.1f}"
        )
    small, large = results[SMALL], results[args.events]
    constant = all(len(small[k]["queries"]) == len(large[k]["queries"]) for k in urls)
    print(f"queries constant: {'yes' if constant else 'no'}")

    for kind in urls:
        if args.show_sql or len(small[kind]["queries"]) != len(large[kind]["queries"]):
            print_queries(f"{kind} at {SMALL} events", small[kind]["queries"])
            print_queries(f"{kind} at {args.events} events", large[kind]["queries"])
    problems = [r[k]["problem"] for r in results.values() for k in urls if r[k]["problem"]]
    for problem in problems:
        print(f"WRONG ANSWER: {problem}")
    print(f"total:     {time.perf_counter() - started:.1f}s")
    return 0 if constant and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
