"""What every benchmark shares: Django on a throwaway var dir, its databases, the benchmark
school and its children, and the measuring helpers.

A script calls `configure()` before anything imports Django (the settings read the environment
once, at import), then `django_setup()`. Django and the product are therefore imported inside the
functions here and in the scripts; pyproject.toml lets bench/ do that (PLC0415).

Scripts import this module as `harness`: run as `python bench/<name>.py`, their own folder is
first on sys.path. `configure()` then takes that folder off sys.path (a script's name must not
shadow a top-level module) and puts the repository root on it.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Settings read from the environment that would point a benchmark at somebody else's data.
FOREIGN_ENV = ("MEDIA_ROOT", "CELERY_BROKER_URL", "REDIS_MATCH_CACHE_URL", "CACHE_URL")
EVENT_BATCH = 10_000
DEVICES = {
    "gate_access": ["Main gate camera", "Side gate camera"],
    "attendance": ["Entrance hall camera", "Year 5 corridor camera"],
    "library": ["Library desk camera"],
}


# --- environment and Django ----------------------------------------------------------------


def configure(
    prefix: str = "guardian-bench-",
    *,
    var_dir: Path | None = None,
    database_url: str | None = None,
    pop: tuple[str, ...] = (),
    **env: str,
) -> Path:
    """Point the settings at a throwaway var dir and return it.

    The var dir is a fresh temporary folder (or `var_dir`, for a child process of a run). Of the
    environment only DATABASE_URL is kept from outside (`database_url` when it is not set; with
    neither, the embedded SQLite databases in the var dir). `pop` removes more variables, `env`
    sets some, last.
    """
    var_dir = var_dir or Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["GUARDIAN_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("GUARDIAN_DEV_SECRETS", "1")
    for name in (*FOREIGN_ENV, *pop):
        os.environ.pop(name, None)
    url = os.environ.get("DATABASE_URL") or database_url
    if url:
        os.environ["DATABASE_URL"] = url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("KEYSTORE_DATABASE_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The benchmarks' reference holders listen on 127.0.0.1, on PostgreSQL too (where the
    # default refuses loopback holders, as a deployment should).
    os.environ["HOLDER_ALLOW_PRIVATE_ADDRESSES"] = "1"
    os.environ.update(env)
    on_path()
    return var_dir


def on_path() -> None:
    """The repository root on sys.path; the bench folder off it."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def django_setup() -> None:
    import django

    # The school's notices go to memory, as in the tests: `tests/factories.link` counts them.
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    django.setup()
    from django.core import mail

    mail.outbox = []


def migrate() -> None:
    """Both databases: the main one and the key store."""
    from django.core.management import call_command

    call_command("migrate", database="default", interactive=False, verbosity=0)
    call_command("migrate", database="keys", interactive=False, verbosity=0)


def finish(var_dir: Path, *, keep: bool, databases: list[str] | None = None) -> None:
    """End of a run: keep the var dir (and the databases) when asked, else drop the databases
    this run created and delete the var dir. Django's connections are closed first."""
    if "django.db" in sys.modules:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
    if keep:
        kept = f" and databases {', '.join(databases)}" if databases else ""
        print(f"\nkept {var_dir}{kept}")
        return
    if databases:
        postgres_databases("drop")
    shutil.rmtree(var_dir, ignore_errors=True)


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_connect(db: dict | str, *, admin: bool = False, app: str | None = None):
    """A plain psycopg connection (autocommit) to a database given by its settings dict or URL,
    or to the server's `postgres` database with `admin`."""
    import psycopg

    if isinstance(db, str):
        parts = urlsplit(db)
        db = {
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": parts.port or "",
        }
    params = {
        "dbname": "postgres" if admin else db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "application_name": app,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True)


def _postgres_targets(url: str | None) -> list[tuple[dict | str, str]]:
    """(where to connect, database name) of the main and key-store databases: those of the
    settings, or `url` and its `<name>_keys` twin."""
    if url is not None:
        name = unquote(urlsplit(url).path.lstrip("/"))
        return [(url, name), (url, f"{name}_keys")]
    from django.conf import settings

    return [
        (db, db["NAME"])
        for db in (settings.DATABASES["default"], settings.DATABASES["keys"])
        if db["ENGINE"].endswith("postgresql")
    ]


def postgres_databases(action: str, *, url: str | None = None, force: bool = True) -> list[str]:
    """On PostgreSQL, "create" (dropping them first if present) or "drop" the main and key-store
    databases, of the settings or of `url` (before Django is set up). Returns their names.

    Their names must contain "bench", a safety net against dropping a real database. Unless
    `force`, refuse while another client is connected to them (another run is using them).
    """
    from psycopg import sql

    if url is None:
        from django.db import connections

        connections.close_all()
    targets = _postgres_targets(url)
    for _, name in targets:
        if "bench" not in name:
            raise SystemExit(f"refusing to drop/create {name!r}: not a benchmark database")
    if targets and not force:
        names = [name for _, name in targets]
        with postgres_connect(targets[0][0], admin=True) as conn:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s) "
                "AND pid <> pg_backend_pid()",
                [names],
            ).fetchone()[0]
        if busy:
            raise SystemExit(
                f"{busy} other connection(s) to {', '.join(names)}: another run is using them. "
                "Wait for it, or pass --force to drop them anyway."
            )
    for source, name in targets:
        with postgres_connect(source, admin=True) as conn:
            identifier = sql.Identifier(name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
            if action == "create":
                conn.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    return [name for _, name in targets]


def postgres_create_missing() -> list[str]:
    """On PostgreSQL, create the main and key-store databases of the settings if missing."""
    from psycopg import sql

    created = []
    for db, name in _postgres_targets(None):
        with postgres_connect(db, admin=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
    return created


# --- what the run is measured on ------------------------------------------------------------


def database_version() -> str:
    """The version of the main database ("SQLite 3.x", "PostgreSQL 15.x") and its name."""
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(",")[0]
        else:
            cursor.execute("SELECT sqlite_version()")
            version = "SQLite " + cursor.fetchone()[0]
    return f"{version}  ({settings.DATABASES['default']['NAME']})"


def machine() -> str:
    import django

    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Django {django.get_version()}"
    )


def load_average(separator: str = " ") -> str:
    return separator.join(f"{x:.2f}" for x in os.getloadavg())


# --- measuring ------------------------------------------------------------------------------


def percentile(values, pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def captured(client, url: str):
    """One GET with every query on both databases recorded: (response, [(alias, sql)])."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with ExitStack() as stack:
        contexts = {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in ("default", "keys")
        }
        response = client.get(url)
    queries = [(alias, q["sql"]) for alias, ctx in contexts.items() for q in ctx.captured_queries]
    return response, queries


@contextmanager
def counting_queries():
    """Count queries on both databases cheaply (no SQL kept): yields a dict alias -> count."""
    from django.db import connections

    counts = {"default": 0, "keys": 0}

    def wrapper_for(alias):
        def wrapper(execute, sql, params, many, context):
            counts[alias] += 1
            return execute(sql, params, many, context)

        return wrapper

    with ExitStack() as stack:
        for alias in counts:
            stack.enter_context(connections[alias].execute_wrapper(wrapper_for(alias)))
        yield counts


def print_queries(title: str, queries, width: int | None = None) -> None:
    print(f"\n{title} ({len(queries)} queries):")
    for i, (alias, text) in enumerate(queries, 1):
        print(f"  {i:2}. [{alias}] {text[:width] if width else text}")


# --- the benchmark school -------------------------------------------------------------------


def actor():
    from consent.actors import Actor

    return Actor.system("bench")


def school_create(slug: str, name: str, codes, **fields):
    """A school with a DPO and, for each code, a purpose with its notice, enabled (as the tests
    build them, `tests.factories.purpose_with_notice`). Returns (school, {code: purpose})."""
    from consent.models import School
    from tests.factories import purpose_with_notice

    school = School.objects.create(
        slug=slug, name=name, dpo_name="Dana Officer", dpo_email="dpo@bench.example", **fields
    )
    return school, {code: purpose_with_notice(school, code) for code in codes}


def consent_for(student, guardian, purposes) -> None:
    """Link the guardian (notified, parental responsibility) and grant every purpose."""
    from tests.factories import grant, link

    link(guardian, student)
    for purpose in purposes:
        grant(student, purpose, guardian)


def child_with_consent(school, guardian, purposes, *, external_id: str, name: str):
    """A child on the school's roll with the guardian's consent to each purpose."""
    from consent.services import student_create

    student = student_create(
        school=school, external_id=external_id, name=name, class_name="Year 5", actor=actor()
    )
    consent_for(student, guardian, purposes)
    return student


def add_events(student, purposes, count: int, rng) -> float:
    """Bulk-insert `count` recognition events over the last 30 days (devices from DEVICES);
    returns the seconds taken."""
    from django.db import transaction
    from django.utils import timezone

    from biometrics.models import RecognitionEvent

    started = time.perf_counter()
    now = timezone.now()
    window = 30 * 24 * 3600
    left = count
    while left:
        size = min(EVENT_BATCH, left)
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
            RecognitionEvent.objects.bulk_create(rows, batch_size=EVENT_BATCH)
        left -= size
    return time.perf_counter() - started


def settle_statistics() -> None:
    """PostgreSQL: what autovacuum would do soon after bulk inserts, before timing starts."""
    from django.db import connection

    from biometrics.models import RecognitionEvent

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'VACUUM ANALYZE "{RecognitionEvent._meta.db_table}"')


def forget_earlier_runs(slug_prefix: str) -> int:
    """Delete the recognition events earlier runs left in a shared (PostgreSQL) database."""
    from biometrics.models import RecognitionEvent

    deleted, _ = RecognitionEvent.objects.filter(
        student__school__slug__startswith=slug_prefix
    ).delete()
    return deleted
