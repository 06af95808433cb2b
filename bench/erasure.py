"""Erasure benchmark: PostgreSQL + Redis, two Celery worker processes, two reference holders.

- latency: from the withdrawing decision (committed, as the API request does) to a verified
  erasure, one child at a time: median, p95, max;
- throughput: N erasures started at once, drained to verified (the watchdog runs every 5 s,
  as beat would);
- rows left behind for the erased children, in every store (target 0).

    .venv/bin/python bench/erasure.py [--latency-n 20] [--bulk-n 1000] [--embedded]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432/guardian_bench_erasure"
REDIS = "redis://127.0.0.1:6379/3"


def configure(embedded: bool) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["GUARDIAN_VAR_DIR"] = tempfile.mkdtemp(prefix="guardian-bench-erasure-")
    if embedded:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
        return
    import psycopg
    import redis

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        for name in ("guardian_bench_erasure", "guardian_bench_erasure_keys"):
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()
    os.environ["DATABASE_URL"] = PG
    os.environ["CELERY_BROKER_URL"] = REDIS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-n", type=int, default=20)
    parser.add_argument("--bulk-n", type=int, default=1000)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    configure(args.embedded)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="keys", verbosity=0)

    import numpy as np
    from django.db import transaction
    from django.utils import timezone

    from biometrics import demo_photos, faces
    from biometrics.erasure import erasure_watchdog
    from biometrics.models import (
        ChildKey,
        ErasureRequest,
        FaceTemplate,
        Holder,
        Photo,
        RecognitionEvent,
        TemplateCopy,
    )
    from biometrics.services import template_create
    from biometrics.storage import subject_files
    from consent.actors import Actor
    from consent.models import Purpose, School, Student
    from consent.services import (
        consent_decide,
        guardian_get_or_create,
        guardianship_link,
        notice_publish,
    )
    from tests.processes import start_holder, start_worker, wait_for

    logs = Path(settings.VAR_DIR) / "logs"
    media = Path(settings.VAR_DIR) / "media"
    media.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        holders = [start_holder(logs, name=f"holder-{i}") for i in (1, 2)]
        procs += holders
        env = {"MEDIA_ROOT": str(media), "ERASURE_STUCK_SECONDS": "20"}
        for i in (1, 2):
            procs.append(
                start_worker(
                    logs, name=f"worker{i}", queues="default,erasure", concurrency=2, **env
                )
            )
        actor = Actor.system("bench")
        school = School.objects.create(slug="bench", name="Bench School")
        purpose = Purpose.objects.create(
            school=school, code="gate_access", name="Gate", alternative="Card", dpia_reference="D"
        )
        notice = notice_publish(purpose=purpose, text="n", actor=actor)
        purpose.enabled = True
        purpose.save()
        for i, proc in enumerate(holders):
            Holder.objects.create(
                school=school,
                name=f"Holder {i + 1}",
                base_url=proc.info["url"],
                secret=proc.info["secret"],
            )
        base = faces.embedding_from_photo(demo_photos.grace_hopper())
        rng = np.random.default_rng(1)
        parent = guardian_get_or_create(email="bench@example.com", name="Bench Parent")

        def make_children(n: int, prefix: str) -> list[Student]:
            children = []
            for i in range(n):
                child = Student.objects.create(
                    school=school, external_id=f"{prefix}{i}", name=f"{prefix}{i}"
                )
                guardianship_link(guardian=parent, student=child, actor=actor)
                consent_decide(
                    student=child,
                    purpose=purpose,
                    guardian=parent,
                    decision="grant",
                    notice_version=notice.version,
                )
                with transaction.atomic():
                    template_create(
                        student=child, photo=None, embedding=base + rng.normal(0, 0.01, 128)
                    )
                RecognitionEvent.objects.create(
                    student=child, purpose=purpose, device="g", distance=0.3, at=timezone.now()
                )
                children.append(child)
            wait_for(
                lambda: TemplateCopy.objects.filter(
                    template__student__in=children, status="stored"
                ).count()
                == 2 * n,
                timeout=600,
                what="template copies in both holders",
            )
            return children

        def withdraw(child) -> None:
            consent_decide(
                student=child,
                purpose=purpose,
                guardian=parent,
                decision="withdraw",
                notice_version=notice.version,
            )

        # latency
        latency_children = make_children(args.latency_n, "L")
        latencies = []
        for child in latency_children:
            started = time.perf_counter()
            withdraw(child)
            while not ErasureRequest.objects.filter(student=child, status="verified").exists():
                time.sleep(0.01)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]

        # throughput
        bulk = make_children(args.bulk_n, "B")
        started = time.perf_counter()
        for child in bulk:
            withdraw(child)
        start_loop = time.perf_counter() - started
        last_watchdog = time.perf_counter()
        while ErasureRequest.objects.filter(student__in=bulk).exclude(status="verified").exists():
            time.sleep(0.2)
            if time.perf_counter() - last_watchdog > 5:
                erasure_watchdog()
                last_watchdog = time.perf_counter()
            if time.perf_counter() - started > 900:
                print("gave up after 900 s")
                break
        drain = time.perf_counter() - started

        # rows left behind
        erased = latency_children + bulk
        ids = [c.pk for c in erased]
        subjects = {str(c.subject_id) for c in erased}
        left = {
            "photos": Photo.objects.filter(student_id__in=ids).count(),
            "templates": FaceTemplate.objects.filter(student_id__in=ids).count(),
            "recognition events": RecognitionEvent.objects.filter(student_id__in=ids).count(),
            "template copies": TemplateCopy.objects.filter(template__student_id__in=ids).count(),
            "live data keys": ChildKey.objects.filter(
                student_id__in=ids, wrapped_key__isnull=False
            ).count(),
            "photo files": sum(len(subject_files(s)) for s in subjects),
        }
        for proc in holders:
            held = set(proc.info["client"].iter_subjects())
            left[f"subjects in {proc.name}"] = len(held & subjects)

        mode = "SQLite + filesystem broker" if args.embedded else "PostgreSQL + Redis"
        print(f"\n## Erasure benchmark ({mode}, 2 workers x concurrency 2, 2 holders)")
        print(
            f"withdraw -> verified, {len(latencies)} children one at a time: "
            f"median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
            f"max {latencies[-1]:.2f} s (target p95 <= 2 s)"
        )
        print(
            f"{len(bulk)} erasures started at once (loop {start_loop:.1f} s): all verified "
            f"in {drain:.1f} s, {len(bulk) / drain:.1f} erasures/s (target <= 30 s)"
        )
        print("rows left behind: " + ", ".join(f"{k} {v}" for k, v in left.items()))
        return 1 if sum(left.values()) else 0
    finally:
        for proc in procs:
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
