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
import random
import statistics
import sys
import time
import uuid

import harness

SMALL = 10
WARMUPS = 3
SLUG_PREFIX = "bench-child-page-"


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


def build_world(run_id: str):
    """The school, the guardian, the measured child (consent + real template), another child."""
    from biometrics import demo_photos
    from biometrics.access import access_record
    from biometrics.models import FaceTemplate, Holder, TemplateCopy
    from biometrics.services import photo_enrol
    from consent.actors import Actor
    from consent.services import guardian_get_or_create

    school, purposes = harness.school_create(
        f"{SLUG_PREFIX}{run_id}", "Benchmark Primary School", harness.DEVICES
    )
    parent = guardian_get_or_create(email=f"parent.{run_id}@bench.example", name="Bench Parent")
    other_parent = guardian_get_or_create(
        email=f"other.{run_id}@bench.example", name="Other Parent"
    )
    granted = [purposes["gate_access"], purposes["attendance"]]
    measured = harness.child_with_consent(
        school, parent, granted, external_id=f"GRACE-{run_id}", name="Grace Bench"
    )
    other = harness.child_with_consent(
        school, other_parent, granted, external_id=f"ADA-{run_id}", name="Ada Bench"
    )
    photo_enrol(
        student=measured,
        data=demo_photos.grace_hopper(),
        actor=harness.actor(),
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
        response, queries = harness.captured(client, url)
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
            "p95": harness.percentile(times, 95),
            "problem": problem,
        }
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = harness.configure("guardian-bench-")
    try:
        return run(args, var_dir)
    finally:
        harness.finish(var_dir, keep=args.keep)


def run(args, var_dir) -> int:
    harness.django_setup()
    from django.test import Client

    from biometrics.models import RecognitionEvent

    started = time.perf_counter()
    created = harness.postgres_create_missing()
    harness.migrate()
    earlier = harness.forget_earlier_runs(SLUG_PREFIX)
    print(f"database:  {harness.database_version()}")
    if created:
        print(f"created:   {', '.join(created)}")
    if earlier:
        print(f"deleted {earlier} events left by earlier benchmark runs")
    print(f"machine:   {harness.machine()}")
    print(f"var dir:   {var_dir}")

    rng = random.Random(20261128)
    run_id = uuid.uuid4().hex[:8]
    parent, child, other, purposes = build_world(run_id)
    print(f"setup:     {time.perf_counter() - started:.1f}s (school, consent, real enrolment)")
    seconds = harness.add_events(other, purposes, args.events, rng)
    print(f"inserted:  {args.events} events for another child in {seconds:.1f}s")
    harness.add_events(child, purposes, SMALL, rng)
    harness.settle_statistics()

    client = Client()
    client.force_login(parent.user)
    urls = {"page": f"/children/{child.pk}/", "api": f"/api/v1/children/{child.pk}/"}

    results = {SMALL: measure(client, urls, SMALL, args.requests)}
    seconds = harness.add_events(child, purposes, args.events - SMALL, rng)
    harness.settle_statistics()
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
            harness.print_queries(f"{kind} at {SMALL} events", small[kind]["queries"])
            harness.print_queries(f"{kind} at {args.events} events", large[kind]["queries"])
    problems = [r[k]["problem"] for r in results.values() for k in urls if r[k]["problem"]]
    for problem in problems:
        print(f"WRONG ANSWER: {problem}")
    print(f"total:     {time.perf_counter() - started:.1f}s")
    return 0 if constant and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
