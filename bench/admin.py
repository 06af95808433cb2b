#!/usr/bin/env python
"""Benchmark the school admin: roster import time, and SQL queries on the students changelist.

1. Roster import: the 2,000-student / 3,500-guardian roster of ``tests/test_admin.py``
   (``roster_csv``, with the same four bad rows as the test) is read with ``read_csv`` and
   imported through ``consent.roster.roster_import`` into a school of its own; then imported
   again (idempotent: nothing may change). Time, queries and the report of both runs are printed.
2. Students changelist (``/admin/consent/student/``, StudentAdmin with its "Consent per purpose"
   column and ConsentFilter), as a scoped staff member (group "School admin" + StaffMembership)
   through ``django.test.Client``. A second school with three purposes (notices published,
   enabled) is built up in steps (``--sizes``, default 100, 500 and 2,000 students) by importing
   the first N students of the same roster (other guardian e-mails), then recording decisions
   for each new student (60 % grant, some also a second purpose, 10 % objected, 10 % granted then
   withdrew, 10 % granted then the child refused, 10 % undecided). At each size it measures:

   * ``page``   – the default changelist (100 per page);
   * ``all``    – ``?all=`` ("show all"; Django admin honours it only up to
     ``list_max_show_all``, 200 by default, and silently keeps paginating above that);
   * ``active`` – ``?consent=active`` (the ConsentFilter);
   * ``all*``   – ``?all=`` with ``list_max_show_all`` lifted *in this process only*, so every
     student really is on the page (how the consent column scales with the rows shown).

   Queries are captured on both databases (main and key store) for one request after warm-ups;
   then the median (and max) of ``--requests`` timed requests is printed.

It exits 1 when a query count grows with the number of students, or a page is wrong (HTTP
status, rows shown, filter result count), so it can serve as a CI check.

Usage (from the repository root)::

    .venv/bin/python bench/admin.py [--sizes 100,500,2000] [--requests 10] [--show-sql]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench_admin .venv/bin/python bench/admin.py

By default everything lives in a fresh temporary ``GUARDIAN_VAR_DIR`` (SQLite databases, media,
broker), deleted afterwards. With ``DATABASE_URL`` (PostgreSQL) the main database and its
``<name>_keys`` key store (or ``KEYSTORE_DATABASE_URL``) are dropped if present, created,
migrated, and dropped again at the end (``--keep`` keeps them, and the var dir). Their names
must contain "bench" (a safety net against dropping a real database).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from contextlib import contextmanager

import harness

WARMUPS = 2
PURPOSES = ["gate_access", "attendance", "library"]
BAD_ROWS = [  # the bad rows of tests/test_admin.py::test_roster_import_of_2000_students_with_bad_rows
    (10, {"external_id": "", "name": "No id"}),
    (500, {"external_id": "X1", "name": "Bad date", "date_of_birth": "31/12/2015"}),
    (
        1000,
        {
            "external_id": "X2",
            "name": "Bad mail",
            "guardian_email": "not-an-email",
            "guardian_name": "x",
        },
    ),
    (
        3000,
        {
            "external_id": "X3",
            "name": "Bad flag",
            "guardian_email": "ok@example.com",
            "guardian_name": "ok",
            "parental_responsibility": "maybe",
        },
    ),
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="100,500,2000",
        help="students in the measured school, ascending, at most 2000 (default 100,500,2000)",
    )
    parser.add_argument(
        "--requests", type=int, default=10, help="timed requests per URL and size (default 10)"
    )
    parser.add_argument(
        "--show-sql", action="store_true", help="print every query of each URL at each size"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the var dir (and PostgreSQL databases)"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if args.sizes != sorted(set(args.sizes)) or args.sizes[0] < 1 or args.sizes[-1] > 2000:
        parser.error("--sizes must be distinct, ascending, between 1 and 2000")
    if len(args.sizes) < 2:
        parser.error("--sizes needs at least two sizes to compare")
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def roster_rows(n_students: int, email_domain: str, bad: bool) -> list[dict]:
    """The roster of tests/test_admin.py as read_csv returns it, for the first n students."""
    from consent.roster import read_csv
    from tests.test_admin import roster_csv

    text, _ = roster_csv(bad_lines=BAD_ROWS if bad else ())
    if email_domain != "example.com":
        text = text.replace("@example.com", f"@{email_domain}")
    rows = read_csv(text.encode())
    if n_students < 2000:
        keep = {f"R{i:05d}" for i in range(n_students)}
        rows = [r for r in rows if r["external_id"] in keep]
    return rows


def make_school(slug: str, name: str, with_purposes: bool):
    return harness.school_create(slug, name, PURPOSES if with_purposes else ())


def time_import(school) -> list[dict]:
    """The full roster (with bad rows) imported twice; returns one result per run."""
    from consent.actors import Actor
    from consent.models import AuditEvent
    from consent.roster import roster_import

    started = time.perf_counter()
    rows = roster_rows(2000, "example.com", bad=True)
    read_seconds = time.perf_counter() - started
    results = []
    for label in ("first import", "re-run (idempotent)"):
        audit_before = AuditEvent.objects.count()
        with harness.counting_queries() as counts:
            started = time.perf_counter()
            report = roster_import(school=school, rows=rows, actor=Actor.system("bench"))
            seconds = time.perf_counter() - started
        results.append(
            {
                "label": label,
                "rows": len(rows),
                "read_seconds": read_seconds,
                "seconds": seconds,
                "queries": sum(counts.values()),
                "report": report,
                "audit_events": AuditEvent.objects.count() - audit_before,
            }
        )
    return results


def staff_member(school):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from consent.models import StaffMembership

    user = get_user_model().objects.create_user(
        "bench-admin-staff", password="bench-pw-unused", is_staff=True
    )
    user.groups.add(Group.objects.get(name="School admin"))
    StaffMembership.objects.create(user=user, school=school)
    return user


def grow_school(school, purposes, size: int, done: int) -> dict:
    """Import the first `size` students (idempotently) and decide for the new ones."""
    from consent.actors import Actor
    from consent.models import Decision, Guardianship, Student
    from consent.roster import roster_import
    from consent.services import child_refusal_record, consent_decide

    actor = Actor.system("bench")
    started = time.perf_counter()
    report = roster_import(
        school=school, rows=roster_rows(size, "measured.example", bad=False), actor=actor
    )
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    new = {f"R{i:05d}": i for i in range(done, size)}
    students = Student.objects.filter(school=school, external_id__in=new)
    first_guardian = {}
    for link in Guardianship.objects.filter(student__in=students).order_by("pk"):
        first_guardian.setdefault(link.student_id, link.guardian)
    decisions = 0

    def decide(student, code, decision):
        nonlocal decisions
        purpose = purposes[code]
        consent_decide(
            student=student,
            purpose=purpose,
            guardian=first_guardian[student.pk],
            decision=decision,
            notice_version=purpose.current_notice.version,
            actor=actor,
        )
        decisions += 1

    for student in students:
        kind = new[student.external_id] % 10
        if kind <= 5:  # active: gate_access, and for some attendance too
            decide(student, "gate_access", Decision.GRANT)
            if kind <= 2:
                decide(student, "attendance", Decision.GRANT)
        elif kind == 6:
            decide(student, "gate_access", Decision.OBJECT)
        elif kind == 7:
            decide(student, "gate_access", Decision.GRANT)
            decide(student, "gate_access", Decision.WITHDRAW)
        elif kind == 8:
            decide(student, "library", Decision.GRANT)
            child_refusal_record(student=student, actor=actor, note="bench")
            decisions += 1
        # kind 9: nobody decided
    return {
        "import_seconds": import_seconds,
        "created": report.students_created,
        "links": report.links_created,
        "errors": len(report.errors),
        "decisions": decisions,
        "decide_seconds": time.perf_counter() - started,
    }


RESULT_COUNT = re.compile(r"(\d+) results? \(")


def inspect(response, size: int, kind: str, expected_active: int) -> tuple[int, int | None, str]:
    """Rows shown, the filter's result count (None without a filter) and any problem."""
    if response.status_code != 200:
        return 0, None, f"HTTP {response.status_code}"
    page = response.content.decode()
    rows = page.count('name="_selected_action"')
    match = RESULT_COUNT.search(page)
    found = int(match.group(1)) if match else None
    if kind == "active":
        want_rows = min(100, expected_active)
        if found != expected_active:
            return rows, found, f"filter found {found}, expected {expected_active}"
    elif kind == "all*" or (kind == "all" and size <= 200):
        want_rows = size
    else:
        want_rows = min(100, size)
    if rows != want_rows:
        return rows, found, f"{rows} rows shown, expected {want_rows}"
    if "gate_access: active" not in page:
        return rows, found, "no 'gate_access: active' in the consent column"
    return rows, found, ""


@contextmanager
def show_all_cap(limit: int | None):
    """Lift StudentAdmin.list_max_show_all in this process (None: leave it alone)."""
    from django.contrib import admin

    from consent.models import Student

    model_admin = admin.site._registry[Student]
    before = model_admin.list_max_show_all
    if limit is not None:
        model_admin.list_max_show_all = limit
    try:
        yield
    finally:
        model_admin.list_max_show_all = before


URLS = {
    "page": ("/admin/consent/student/", None),
    "all": ("/admin/consent/student/?all=", None),
    "active": ("/admin/consent/student/?consent=active", None),
    "all*": ("/admin/consent/student/?all=", 1_000_000),
}


def measure(client, size: int, requests: int, expected_active: int) -> dict:
    result = {}
    for kind, (url, cap) in URLS.items():
        with show_all_cap(cap):
            for _ in range(WARMUPS):
                client.get(url)
            response, queries = harness.captured(client, url)
            rows, found, problem = inspect(response, size, kind, expected_active)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200 and not problem:
                    problem = f"HTTP {response.status_code}"
        result[kind] = {
            "queries": queries,
            "rows": rows,
            "found": found,
            "median": statistics.median(times),
            "max": max(times),
            "problem": problem,
        }
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = harness.configure("guardian-bench-admin-")
    harness.django_setup()
    created = harness.postgres_databases("create")
    try:
        return run(args, created)
    finally:
        harness.finish(var_dir, keep=args.keep, databases=created)


def run(args, created: list[str]) -> int:
    from django.test import Client

    total_started = time.perf_counter()
    harness.migrate()
    print(f"database:  {harness.database_version()}")
    if created:
        print(f"created:   {', '.join(created)} (dropped at the end)")
    print(f"machine:   {harness.machine()}")

    # 1. Roster import.
    import_school, _ = make_school("bench-roster-import", "Roster Import School", False)
    imports = time_import(import_school)
    print(
        f"\nroster import: {imports[0]['rows']} rows (2000 students, 3500 guardians, 4 bad rows), "
        f"read_csv {imports[0]['read_seconds'] * 1000:.0f} ms\n"
    )
    print(
        f"{'run':<21} {'seconds':>8} {'rows/s':>7} {'queries':>8} {'q/row':>6} "
        f"{'students':>9} {'updated':>8} {'guardians':>10} {'links':>6} {'errors':>7} "
        f"{'audit ev':>9}"
    )
    problems = []
    for r in imports:
        rep = r["report"]
        print(
            f"{r['label']:<21} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>7.0f} "
            f"{r['queries']:>8} {r['queries'] / r['rows']:>6.1f} {rep.students_created:>9} "
            f"{rep.students_updated:>8} {rep.guardians_created:>10} {rep.links_created:>6} "
            f"{len(rep.errors):>7} {r['audit_events']:>9}"
        )
    first, again = imports[0]["report"], imports[1]["report"]
    if (first.students_created, first.links_created, len(first.errors)) != (2000, 3500, 4):
        problems.append(f"first import: {first}")
    if again.changed or again.guardians_created or imports[1]["audit_events"]:
        problems.append(f"re-run changed something: {again}")
    if [line for line, _ in first.errors] != [12, 502, 1002, 3002]:
        problems.append(f"bad rows reported on lines {[line for line, _ in first.errors]}")

    # 2. The students changelist, school built up in steps.
    school, purposes = make_school("bench-changelist", "Changelist School", True)
    client = Client()
    client.force_login(staff_member(school))
    results = {}
    done = 0
    print()
    for size in args.sizes:
        grown = grow_school(school, purposes, size, done)
        print(
            f"school at {size:>5} students: +{grown['created']} students / {grown['links']} links "
            f"imported in {grown['import_seconds']:.1f}s, {grown['decisions']} decisions in "
            f"{grown['decide_seconds']:.1f}s"
        )
        done = size
        expected_active = sum(1 for i in range(size) if i % 10 <= 5)
        results[size] = measure(client, size, args.requests, expected_active)

    print(
        f"\nstudents changelist as scoped staff; queries (main+keys) of one request after "
        f"{WARMUPS} warm-ups, then median / max of {args.requests} requests"
    )
    print("all* = ?all= with list_max_show_all lifted in the benchmark process only\n")
    header = f"{'students':>8}"
    for kind in URLS:
        header += f" | {kind + ' q':>9} {'rows':>5} {'med ms':>7} {'max ms':>7}"
    print(header)
    for size, r in results.items():
        line = f"{size:>8}"
        for kind in URLS:
            k = r[kind]
            line += f" | {len(k['queries']):>9} {k['rows']:>5} {k['median']:>7.1f} {k['max']:>7.1f}"
        print(line)
    print()
    constant = True
    for kind in URLS:
        counts = [len(r[kind]["queries"]) for r in results.values()]
        same = len(set(counts)) == 1
        constant &= same
        shown = ", ".join(str(c) for c in counts)
        print(f"{kind:<7} queries constant: {'yes' if same else 'NO'} ({shown})")
        if args.show_sql or not same:
            for size, r in results.items():
                harness.print_queries(f"{kind} at {size} students", r[kind]["queries"], width=400)
    largest = results[args.sizes[-1]]
    if args.sizes[-1] > 200:
        print(
            f"\n?all= at {args.sizes[-1]} students showed {largest['all']['rows']} rows: Django "
            f"admin ignores 'show all' above list_max_show_all (200), so it stays paginated."
        )
    for size, r in results.items():
        for kind in URLS:
            if r[kind]["problem"]:
                problems.append(f"{kind} at {size} students: {r[kind]['problem']}")
    for problem in problems:
        print(f"WRONG ANSWER: {problem}")
    print(f"total:     {time.perf_counter() - total_started:.1f}s")
    return 0 if constant and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
