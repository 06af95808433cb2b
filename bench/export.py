#!/usr/bin/env python
"""Benchmark the export package build: time and the worker's peak memory, 10k vs 100k events.

What it does:

1. The parent process sets up a fresh database (see below): one school (three purposes with
   notices, enabled), one guardian, a child with consent granted and ``--photos`` real enrolment
   photos (the four demo faces, varied by crops, small rotations, scaling and JPEG quality so
   every file is distinct and still shows exactly one face), each enrolled with
   ``photo_enrol(..., process_now=True)`` so there is one real template per photo; another
   child has ``--other-events`` recognition events so the events table is never only ours.
2. The measured child gets ``--small`` events (bulk-inserted, batches of 10,000); an export is
   requested (``portal.exports.export_request``) and built in a FRESH child process, which is
   what a Celery worker process is: Django set up, the task modules imported, and
   ``portal/celery.py``'s ``worker_process_init`` handler run. Mode ``worker`` is the process
   that builds exports in production (the Procfile's ``worker``, queues default,erasure: no
   face models); mode ``faces`` sets ``GUARDIAN_LOAD_FACE_MODELS=1`` as the Procfile's
   ``faces`` worker does, so face_recognition's models (~116 MiB) are loaded too — what a
   single worker serving every queue would hold. The targets apply to ``worker``. The child
   calls
   ``portal.exports.export_build(export_id=...)`` and reports
   - wall time of the build,
   - RSS just before the build, the peak RSS while building, and the difference (the build's
     own growth; the peak is reset with ``/proc/self/clear_refs`` just before the build so
     setup spikes are not counted),
   - the process's peak RSS over its whole life, setup included. It is read from ``VmHWM`` in
     ``/proc/self/status``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``exec``, so
     in a freshly spawned child it starts at the parent's RSS at fork time (here ~250 MB, the
     parent has face_recognition loaded) and would hide the child's own figure. Both
     ``ru_maxrss`` values are printed for comparison.
3. The parent decrypts the stored package (``export_open``), checks it (every entry against
   SHA256SUMS, ``recognition_events.csv`` rows and ``data.json`` items equal the event count,
   one file per photo, one row per template) and records its size and number of entries.
4. The events are topped up to ``--events`` and step 2–3 run again.

It prints a table, says whether memory grows with the number of events, and exits 1 when a
target is missed (build > 10 s, worker peak > 200 MB, build growth differing by more than
``--growth-tolerance`` MB between the two sizes) or a package is wrong.

Usage (from the repository root)::

    .venv/bin/python bench/export.py [--small 10000] [--events 100000] [--photos 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/guardian_bench .venv/bin/python bench/export.py

By default everything lives in a fresh temporary ``GUARDIAN_VAR_DIR`` (SQLite databases, media,
export files, broker), deleted afterwards. With ``DATABASE_URL`` the main database (and its
``<name>_keys`` key store, or ``KEYSTORE_DATABASE_URL``) is created if missing; each run adds its
own school and first deletes the recognition events of earlier runs of this benchmark.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import harness

SLUG_PREFIX = "bench-export-"
TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 200.0  # 10^6 bytes: 190.7 MiB
MODES = ("worker", "faces")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="events, first size (10000)")
    parser.add_argument("--events", type=int, default=100_000, help="events, second size (100000)")
    parser.add_argument("--photos", type=int, default=20, help="enrolled photos (default 20)")
    parser.add_argument(
        "--other-events",
        type=int,
        default=10_000,
        help="events of another child in the same table (default 10000)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="child-process modes, comma-separated: worker (the export worker, as the Procfile "
        "runs it) and/or faces (a worker that also holds the face models) (default both)",
    )
    parser.add_argument(
        "--growth-tolerance",
        type=float,
        default=10.0,
        help="MB the build's growth may differ between the two sizes (default 10)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary GUARDIAN_VAR_DIR")
    # Internal: the fresh process that builds one export.
    parser.add_argument("--child", metavar="EXPORT_ID", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, default="worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:
        if not 0 < args.small < args.events:
            parser.error("need 0 < --small < --events")
        if args.photos < 1:
            parser.error("--photos must be at least 1")
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if not modes or any(m not in MODES for m in modes):
            parser.error(f"--modes takes {', '.join(MODES)}")
        args.modes = modes
    return args


def configure_environment() -> Path:
    """A fresh temporary var dir, in which the development key-encryption key is generated;
    the "package ready" email goes nowhere (the console backend would print it)."""
    return harness.configure(
        "guardian-bench-export-",
        pop=("GUARDIAN_KEK", "GUARDIAN_KEK_FILE", "EMAIL_URL"),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )


# --- memory -------------------------------------------------------------------------------------


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0])
    return values


def reset_peak() -> bool:
    """Reset VmHWM (and ru_maxrss) to the current RSS (Linux ≥ 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# --- the child process: one build, as a worker does it -------------------------------------------


def child_main(args) -> int:
    harness.on_path()
    # ru_maxrss survives exec: right now it still holds the parent's RSS at fork time, so the
    # process's own peak is read from VmHWM (per address space, starts afresh at exec).
    inherited_maxrss = maxrss_kib()
    started = time.perf_counter()
    harness.django_setup()
    # A Celery worker imports the app and every task module before its first task.
    from portal.celery import app

    app.loader.import_default_modules()
    if args.mode == "faces":
        os.environ["GUARDIAN_LOAD_FACE_MODELS"] = "1"
    else:
        os.environ.pop("GUARDIAN_LOAD_FACE_MODELS", None)
    from portal.celery import _load_face_models

    _load_face_models()  # what every worker process runs at worker_process_init
    import gc

    from portal.exports import export_build
    from portal.models import Export

    # Open the database connections (a worker's are open after its first task).
    Export.objects.filter(pk=args.child).exists()
    from biometrics.models import ChildKey

    ChildKey.objects.exists()
    gc.collect()
    setup_seconds = time.perf_counter() - started
    status = proc_status()
    setup_peak, before = status["VmHWM"], status["VmRSS"]
    peak_was_reset = reset_peak()

    t0, c0 = time.perf_counter(), time.process_time()
    export = export_build(export_id=args.child)
    build_seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0

    status = proc_status()
    build_peak, after = status["VmHWM"], status["VmRSS"]
    result = {
        "status": export.status,
        "error": export.error,
        "setup_seconds": setup_seconds,
        "build_seconds": build_seconds,
        "cpu_seconds": cpu_seconds,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "build_peak_kib": build_peak,
        "setup_peak_kib": setup_peak,
        "process_peak_kib": max(setup_peak, build_peak),
        "ru_maxrss_kib": maxrss_kib(),
        "ru_maxrss_inherited_kib": inherited_maxrss,
        "peak_was_reset": peak_was_reset,
    }
    print("RESULT " + json.dumps(result))
    return 0 if export.status == "ready" else 1


def build_in_fresh_process(export_id, mode: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(export_id), "--mode", mode]
    done = subprocess.run(
        cmd, cwd=harness.ROOT, capture_output=True, text=True, env=os.environ.copy()
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    sys.stderr.write(done.stdout + done.stderr)
    raise RuntimeError(f"the build process exited {done.returncode} without a result")


# --- the parent: data ----------------------------------------------------------------------------


def photo_candidates(rng: random.Random):
    """Distinct one-face JPEGs: the four demo photos, then crops/rotations/scales of them."""
    from PIL import Image, ImageOps

    from biometrics import demo_photos

    sources = {
        "grace_hopper": demo_photos.grace_hopper(),
        "grace_hopper_half": demo_photos.grace_hopper_half(),
        "astronaut_face": demo_photos.astronaut_face(),
        "astronaut_face_mirrored": demo_photos.astronaut_face_mirrored(),
    }
    for name, data in sources.items():
        yield name, data
    images = {name: Image.open(io.BytesIO(data)).convert("RGB") for name, data in sources.items()}

    def jpeg(img, quality):
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality)
        return out.getvalue()

    variant = 0
    while True:
        variant += 1
        for name, img in images.items():
            w, h = img.size
            kind = variant % 4
            if kind == 1:  # a slightly tighter crop
                dx, dy = int(w * rng.uniform(0.02, 0.06)), int(h * rng.uniform(0.02, 0.06))
                out = img.crop((dx, dy, w - dx, h - dy))
                label = "crop"
            elif kind == 2:  # a small rotation
                out = img.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
                label = "rotate"
            elif kind == 3:  # rescaled
                f = rng.uniform(0.8, 1.2)
                out = img.resize((int(w * f), int(h * f)), Image.Resampling.LANCZOS)
                label = "scale"
            else:  # mirrored and slightly cropped
                dx = int(w * rng.uniform(0.01, 0.04))
                out = ImageOps.mirror(img.crop((dx, 0, w - dx, h)))
                label = "mirror-crop"
            yield f"{name}/{label}{variant}", jpeg(out, rng.choice([85, 88, 90, 92, 95]))


def build_world(run_id: str, photos: int, rng: random.Random):
    from biometrics.image_checks import ImageRejected
    from biometrics.models import FaceTemplate, Photo
    from biometrics.services import photo_enrol
    from consent.services import guardian_get_or_create

    actor = harness.actor()
    school, purposes = harness.school_create(
        f"{SLUG_PREFIX}{run_id}", "Benchmark Primary School", harness.DEVICES
    )
    granted = [purposes["gate_access"], purposes["attendance"]]
    parent = guardian_get_or_create(email=f"parent.{run_id}@bench.example", name="Bench Parent")
    other_parent = guardian_get_or_create(
        email=f"other.{run_id}@bench.example", name="Other Parent"
    )
    measured = harness.child_with_consent(
        school, parent, granted, external_id=f"GRACE-{run_id}", name="Grace Bench"
    )
    other = harness.child_with_consent(
        school, other_parent, granted, external_id=f"ADA-{run_id}", name="Ada Bench"
    )

    enrolled, rejected, seen = [], [], set()
    for label, data in photo_candidates(rng):
        if len(enrolled) == photos:
            break
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            photo = photo_enrol(
                student=measured, data=data, actor=actor, source="bench", process_now=True
            )
        except ImageRejected as exc:
            rejected.append(f"{label}: {exc.code}")
            continue
        if photo.status != "enrolled":
            rejected.append(f"{label}: {photo.reason}")
            continue
        enrolled.append(label)
        if len(rejected) > 3 * photos:
            raise RuntimeError("too many variants rejected: " + "; ".join(rejected))
    assert Photo.objects.filter(student=measured, status="enrolled").count() == photos
    assert FaceTemplate.objects.filter(student=measured).count() == photos
    return parent, measured, other, granted, enrolled, rejected


# --- the parent: checking a package --------------------------------------------------------------


def check_package(export, *, events: int, photos: int) -> dict:
    """Decrypt the stored package and check it; returns sizes, entries and problems."""
    from django.core.files.storage import default_storage

    from portal.exports import export_open

    problems = []
    if export.status != "ready":
        return {"problems": [f"status {export.status} ({export.error})"]}
    sealed_size = default_storage.size(export.storage_name)
    body = b"".join(export_open(export))
    if len(body) != export.size or hashlib.sha256(body).hexdigest() != export.sha256:
        problems.append("size or SHA-256 differs from the export record")
    package = zipfile.ZipFile(io.BytesIO(body))
    names = package.namelist()
    sums = {}
    for line in package.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    for name in names:
        if name != "SHA256SUMS" and hashlib.sha256(package.read(name)).hexdigest() != sums.get(
            name
        ):
            problems.append(f"{name}: checksum differs from SHA256SUMS")
    with package.open("recognition_events.csv") as fh:
        rows = sum(1 for _ in csv.reader(io.TextIOWrapper(fh, encoding="utf-8"))) - 1
    if rows != events:
        problems.append(f"recognition_events.csv has {rows} rows, expected {events}")
    doc = json.loads(package.read("data.json"))
    items = doc["recognition_events"]["items"]
    if doc["recognition_events"]["count"] != events or len(items) != events:
        problems.append(
            f"data.json: count {doc['recognition_events']['count']}, {len(items)} items, "
            f"expected {events}"
        )
    photo_files = [n for n in names if n.startswith("photos/")]
    if len(photo_files) != photos or len(doc["photos"]) != photos:
        problems.append(f"{len(photo_files)} photo files, expected {photos}")
    with package.open("templates.csv") as fh:
        templates = sum(1 for _ in csv.reader(io.TextIOWrapper(fh, encoding="utf-8"))) - 1
    if templates != photos or len(doc["templates"]) != photos:
        problems.append(f"{templates} templates, expected {photos}")
    largest = sorted(
        ((i.file_size, i.compress_size, i.filename) for i in package.infolist()), reverse=True
    )[:3]
    return {
        "zip_bytes": len(body),
        "sealed_bytes": sealed_size,
        "entries": len(names),
        "largest": largest,
        "problems": problems,
    }


# --- the parent: the run -------------------------------------------------------------------------


def mib(kib: int) -> float:
    return kib / 1024


def run(args, var_dir: Path) -> int:
    harness.django_setup()
    import logging

    # export_request queues the build on the (temporary, unconsumed) filesystem broker; kombu
    # warns about the missing hostname each time.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)

    from biometrics.models import RecognitionEvent
    from portal.exports import export_request

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
    t = time.perf_counter()
    parent, child, other, purposes, enrolled, rejected = build_world(run_id, args.photos, rng)
    print(
        f"setup:     {time.perf_counter() - t:.1f}s: {len(enrolled)} photos enrolled through "
        f"face_recognition ({len(rejected)} variants rejected)"
    )
    if rejected:
        print(f"           rejected: {'; '.join(rejected)}")
    seconds = harness.add_events(other, purposes, args.other_events, rng)
    print(f"inserted:  {args.other_events} events for another child in {seconds:.1f}s")

    results = []
    have = 0
    for size in (args.small, args.events):
        seconds = harness.add_events(child, purposes, size - have, rng)
        have = size
        harness.settle_statistics()
        print(f"inserted:  {size} events for the measured child (+{seconds:.1f}s)")
        for mode in args.modes:
            export = export_request(student=child, guardian=parent)
            r = build_in_fresh_process(export.pk, mode)
            export.refresh_from_db()
            r.update(check_package(export, events=size, photos=args.photos))
            r.update(events=size, mode=mode)
            results.append(r)
            print(
                f"built:     {size} events, {mode}: {r['build_seconds']:.2f}s, peak "
                f"{mib(r['process_peak_kib']):.1f} MiB, growth "
                f"{mib(r['build_peak_kib'] - r['rss_before_kib']):.1f} MiB"
            )
    total_events = RecognitionEvent.objects.count()

    print(
        f"\nexport build, {args.photos} photos/templates, each build in a fresh process; "
        f"events table: {total_events} rows\n"
    )
    header = (
        f"{'events':>8} {'mode':<7} {'build s':>8} {'cpu s':>6} {'RSS before':>11} {'build peak':>11} "
        f"{'growth':>8} {'proc peak':>10} {'ZIP MB':>7} {'sealed MB':>10} {'entries':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['events']:>8} {r['mode']:<7} {r['build_seconds']:>8.2f} {r['cpu_seconds']:>6.2f} "
            f"{mib(r['rss_before_kib']):>8.1f} MiB {mib(r['build_peak_kib']):>7.1f} MiB "
            f"{mib(r['build_peak_kib'] - r['rss_before_kib']):>4.1f} MiB "
            f"{mib(r['process_peak_kib']):>6.1f} MiB {r.get('zip_bytes', 0) / 1e6:>7.2f} "
            f"{r.get('sealed_bytes', 0) / 1e6:>10.2f} {r.get('entries', 0):>8}"
        )
    print(
        "(build s = wall time of export_build; cpu s = its process CPU time, the database "
        "server's not included)"
    )
    print("(MiB = 1024 KiB of RSS; growth = build peak − RSS before the build; ZIP MB = 10^6 B)")
    r = results[0]
    print(
        f"(ru_maxrss in a child: {mib(r['ru_maxrss_inherited_kib']):.1f} MiB at its start, "
        f"inherited from this parent across fork+exec, so VmHWM is used; after the build "
        f"{mib(r['ru_maxrss_kib']):.1f} MiB with the peak reset before the build)"
    )
    if results and results[-1].get("largest"):
        print("largest entries at", results[-1]["events"], "events (bytes, compressed, name):")
        for size, compressed, name in results[-1]["largest"]:
            print(f"  {size:>10} {compressed:>10}  {name}")

    failures = []
    for r in results:
        for problem in r.get("problems", []):
            failures.append(f"WRONG PACKAGE ({r['events']} events, {r['mode']}): {problem}")
        if r["build_seconds"] > TARGET_SECONDS:
            failures.append(
                f"SLOW: {r['events']} events, {r['mode']}: {r['build_seconds']:.1f}s > "
                f"{TARGET_SECONDS:.0f}s"
            )
        peak_mb = r["process_peak_kib"] * 1024 / 1e6
        if r["mode"] == "worker" and peak_mb > TARGET_PEAK_MB:
            failures.append(
                f"MEMORY: {r['events']} events, worker peak {mib(r['process_peak_kib']):.1f} MiB "
                f"= {peak_mb:.0f} MB > {TARGET_PEAK_MB:.0f} MB (RSS before the build: "
                f"{mib(r['rss_before_kib']):.1f} MiB)"
            )
    for mode in args.modes:
        growth = {
            r["events"]: mib(r["build_peak_kib"] - r["rss_before_kib"])
            for r in results
            if r["mode"] == mode
        }
        small, large = growth[args.small], growth[args.events]
        grows = large - small > args.growth_tolerance
        print(
            f"memory grows with events ({mode}): {'YES' if grows else 'no'} "
            f"(growth {small:.1f} MiB at {args.small}, {large:.1f} MiB at {args.events})"
        )
        if grows:
            failures.append(f"MEMORY GROWS ({mode}): {small:.1f} → {large:.1f} MiB")
        if not results[0]["peak_was_reset"]:
            print("  (peak could not be reset: growth includes the setup's peak)")
    for failure in failures:
        print(failure)
    print(f"total:     {time.perf_counter() - started:.1f}s")
    return 1 if failures else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    var_dir = configure_environment()
    try:
        return run(args, var_dir)
    finally:
        harness.finish(var_dir, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
