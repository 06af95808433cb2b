"""What bench/load.py measures with: one Locust run in its own process and what it recorded,
the wait for a cohort's erasures, and the warm-up that builds each web process's match index.
Imported before Django is set up; Django and the product are imported inside the functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import erasure
import harness

# --- running Locust and reading what it recorded ---------------------------------------------


def locust(
    run,
    scenario: str,
    seconds: float,
    *,
    gates=0,
    clients=0,
    parents=0,
    cohort="",
    paced=True,
):
    """One headless Locust run in its own process; returns its recorded requests. Paced: gates
    at `--gate-rate` between them, withdrawing clients waiting `--withdraw-wait`; otherwise
    both as fast as they are answered (the stack's capacity)."""
    gate_rate = run.args.gate_rate / gates if paced and gates else 0
    results = run.var_dir / f"results-{scenario}.json"
    env = dict(
        os.environ,
        LOAD_DATA=str(run.data_file),
        LOAD_RESULTS=str(results),
        LOAD_GATES=str(gates),
        LOAD_WITHDRAWERS=str(clients),
        LOAD_PARENTS=str(parents),
        LOAD_COHORT=cohort,
        LOAD_EVENING_WAIT=run.args.evening_wait,
        LOAD_GATE_RATE=str(gate_rate),
        LOAD_WITHDRAW_WAIT=run.args.withdraw_wait if paced else "0",
        LOAD_QUIT_AFTER_WITHDRAWALS="1" if scenario.startswith("news") else "0",
    )
    users = gates + clients + parents
    classes = [c for c, n in (("Gate", gates), ("Withdrawer", clients), ("Parent", parents)) if n]
    args = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(harness.HERE / "load_locust.py"),
        "--headless",
        "--host",
        run.web.info["url"],
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{int(seconds)}s",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "10",
        *classes,
    ]
    log = open(run.logs / f"locust-{scenario}.log", "w")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
    run.sampler.add_root("locust", proc.pid)
    proc.wait(timeout=seconds + 120)
    log.close()
    return json.loads(results.read_text()) if results.exists() else []


def summarise(records, seconds: float | None = None) -> list[str]:
    """Per request name: count, throughput, p50/p95/p99 (ms), errors."""
    lines = []
    by_name: dict[str, list] = {}
    for name, end, ms, ok in records:
        by_name.setdefault(name, []).append((end, ms, ok))
    for name, rows in sorted(by_name.items()):
        times = [ms for _, ms, _ in rows]
        span = seconds or max(
            1e-9, max(e for e, _, _ in rows) - min(e - ms / 1000 for e, ms, _ in rows)
        )
        errors = sum(1 for _, _, ok in rows if not ok)
        lines.append(
            f"  {name:<12} {len(rows):7} requests  {len(rows) / span:7.1f}/s  "
            f"p50 {harness.percentile(times, 50):7.1f}  p95 {harness.percentile(times, 95):7.1f}  "
            f"p99 {harness.percentile(times, 99):7.1f} ms  errors {errors}"
        )
    return lines or ["  no requests recorded"]


def percentile_of(records, name: str, pct: float) -> float:
    times = [ms for n, _, ms, _ in records if n == name]
    return harness.percentile(times, pct) if times else float("nan")


def erasures_wait(run, child_ids: list[str], last_withdrawal: float) -> list[str]:
    """Until every child's erasure is verified (beat runs the watchdog); the time from the last
    withdrawal to the last verification, and what is left in every store."""
    from django.db.models import Max

    from biometrics.models import ErasureRequest, ErasureStatus
    from consent.models import Student

    # The children whose parent withdrew (a bounded run may stop before the whole cohort).
    child_ids = [
        str(pk)
        for pk in ErasureRequest.objects.filter(student_id__in=child_ids).values_list(
            "student_id", flat=True
        )
    ]

    def verified() -> int:
        return ErasureRequest.objects.filter(
            student_id__in=child_ids, status=ErasureStatus.VERIFIED
        ).count()

    started = time.perf_counter()
    while verified() < len(child_ids) and time.perf_counter() - started < run.args.erasure_timeout:
        time.sleep(0.5)
    done = verified()
    last = ErasureRequest.objects.filter(student_id__in=child_ids).aggregate(m=Max("completed_at"))[
        "m"
    ]
    gap = last.timestamp() - last_withdrawal if last and done == len(child_ids) else float("inf")
    children = list(Student.objects.filter(pk__in=child_ids))
    left = erasure.counts(children, run.media, run.holders)
    lines = [
        f"  erasures verified: {done}/{len(child_ids)}; last withdrawal → last verification "
        f"{gap:.1f}s (target ≤ 60s)",
        f"  rows left in every store: {sum(left.values())} "
        + ("" if not sum(left.values()) else str({k: v for k, v in left.items() if v})),
    ]
    return lines


def warm_up(run, probes, seeder) -> None:
    """Each web process builds the match index on its first identification: time that, and
    each process's memory before and after (identification memory per web process)."""
    import concurrent.futures
    import urllib.request

    data = json.loads(run.data_file.read_text())
    run.sampler.mark("cold")

    def identify(_):
        body = json.dumps(
            {"purpose": data["purpose"], "device": "warm-up", "embedding": probes[0][1]}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{run.gates.info['url']}/api/v1/identify/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Api-Key {data['api_key']}",
            },
        )
        t = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
            response.read()
        return time.perf_counter() - t

    args = run.args
    if args.gate_web_workers:
        processes, threads = args.gate_web_workers, args.gate_threads
    else:
        processes, threads = args.web_workers, args.web_threads
    # Enough at once that every process is asked while the others build theirs.
    n = max(8, processes * threads * 2)
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        times = sorted(pool.map(identify, range(n)))
    run.sampler.mark("warm")
    print(
        f"\nwarm-up: {n} identifications at once against a cold stack: slowest {times[-1]:.1f}s, "
        f"fastest {times[0] * 1000:.0f} ms (each web process builds its match index once)"
    )
    with run.sampler._lock:
        seen = list(run.sampler.seen.values())
    for s in seen:
        if s.label.startswith(("web", "gates")) and "cold" in s.rss_marks:
            print(
                f"  {s.label}: RSS {s.rss_marks['cold'] / 2**20:.0f} MB cold → "
                f"{s.rss_marks['warm'] / 2**20:.0f} MB with the index"
            )
