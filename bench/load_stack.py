"""The stack bench/load.py drives, as the README's deployment section runs it: gunicorn,
the Celery workers (default,erasure; faces), beat, two reference holders; and a sampler of
every process's CPU and memory (psutil). Imported after Django is set up."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from tests.processes import Proc

HOLDERS = ("Gate controller", "Canteen till")


def start_redis(log_dir: Path) -> tuple[subprocess.Popen, str]:
    """A Redis server of the run's own on a free loopback port (no persistence): the broker,
    out of reach of other users of the machine's shared Redis (flushes, restarts)."""
    import socket

    log_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    popen = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(log_dir),
        ],
        stdout=open(log_dir / "redis.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return popen, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def start_web(
    log_dir: Path, *, workers: int, threads: int, keepalive: int, name: str = "web", **env: str
) -> Proc:
    """gunicorn portal.wsgi on a free loopback port (the Procfile's line)."""
    from tests.processes import _spawn, free_port, process_env, wait_for

    port = free_port()
    args = [
        str(Path(sys.executable).parent / "gunicorn"),
        "portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "120",
        "--keep-alive",
        str(keepalive),
    ]
    proc = _spawn(name, args, log_dir, process_env(LOG_LEVEL="WARNING", **env))
    proc.info = {"url": f"http://127.0.0.1:{port}"}

    def up() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{proc.info['url']}/api/v1/schema/", timeout=5):  # noqa: S310
                return True
        except OSError:
            return proc.popen.poll() is not None

    wait_for(up, timeout=90, what="gunicorn to answer")
    if proc.popen.poll() is not None:
        raise RuntimeError(f"gunicorn exited:\n{proc.log()[-3000:]}")
    return proc


def start_celery(log_dir: Path, name: str, queues: str, concurrency: int, **env: str) -> Proc:
    """A Celery worker as the README starts it (-Q queues --concurrency N): the tests' own."""
    from tests.processes import start_worker

    return start_worker(log_dir, queues=queues, concurrency=concurrency, name=name, **env)


def start_beat(log_dir: Path, **env: str) -> Proc:
    """Beat, after every schedule is marked as just run: a deployment that has been up a while
    (the hourly and daily jobs are not all due at the same instant the rush begins)."""
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    from tests.processes import _spawn, process_env, wait_for

    PeriodicTask.objects.update(last_run_at=timezone.now())
    PeriodicTasks.update_changed()
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(log_dir / "beat-schedule"),
    ]
    proc = _spawn("beat", args, log_dir, process_env(**env))
    wait_for(
        lambda: "beat: Starting" in proc.log() or proc.popen.poll() is not None,
        timeout=60,
        what="beat to start",
    )
    return proc


def start_holders(log_dir: Path) -> list[Proc]:
    from tests.processes import start_holder

    return [start_holder(log_dir, name=f"holder{i}") for i in (1, 2)]


# --- sampling ---------------------------------------------------------------------------------


@dataclass
class Seen:
    """One process as sampled: its label, CPU seconds at the first and last sample, RSS."""

    label: str
    cpu_first: float
    cpu_last: float
    rss_peak: int = 0
    rss_marks: dict[str, int] = field(default_factory=dict)
    rss_last: int = 0


class Sampler:
    """Every `interval` seconds: CPU seconds and RSS of each process of the stack (each root
    and its descendants: gunicorn's workers, Celery's pool; the run's redis-server), of
    PostgreSQL's backends on our
    databases and of Locust. `mark(name)` notes each process's RSS now (the
    memory-growth figures compare two marks); `window()` starts a fresh CPU count."""

    def __init__(self, roots: dict[str, int], pg_databases: list[str], interval: float = 0.5):
        self.roots, self.pg, self.interval = roots, pg_databases, interval
        self.seen: dict[int, Seen] = {}
        self.extra_roots: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._marks: list[str] = []

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def add_root(self, label: str, pid: int) -> None:
        with self._lock:
            self.extra_roots[label] = pid

    def window(self) -> None:
        """From now on, CPU is counted from the next sample (each process's first)."""
        with self._lock:
            self.seen = {}

    def mark(self, name: str) -> None:
        self._sample()
        with self._lock:
            for seen in self.seen.values():
                seen.rss_marks[name] = seen.rss_last

    def _labels(self) -> dict[int, str]:
        labels: dict[int, str] = {}
        with self._lock:
            roots = {**self.roots, **self.extra_roots}
        for label, pid in roots.items():
            try:
                root = psutil.Process(pid)
                labels[pid] = label
                for n, child in enumerate(root.children(recursive=True), 1):
                    labels[child.pid] = f"{label} child {n}"
            except psutil.Error:
                continue
        wanted = tuple(f" {name} " for name in self.pg)
        for proc in psutil.process_iter(["pid", "cmdline", "name"]):
            if proc.pid in labels:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("postgres: ") and any(w in cmd for w in wanted):
                labels[proc.pid] = "postgres backend"
        return labels

    def _sample(self) -> None:
        for pid, label in self._labels().items():
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu = times.user + times.system
                    rss = proc.memory_info().rss
            except psutil.Error:
                continue
            with self._lock:
                seen = self.seen.get(pid)
                if seen is None:
                    seen = self.seen[pid] = Seen(label, cpu, cpu)
                seen.cpu_last = cpu
                seen.rss_last = rss
                seen.rss_peak = max(seen.rss_peak, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def report(self, *, warm: str | None = None, end: str | None = None) -> list[str]:
        """One line per process (backends and redis summed): CPU seconds in the window, peak
        RSS, and with marks, RSS growth from `warm` to `end`."""
        with self._lock:
            seen = list(self.seen.items())
        lines = []
        grouped: dict[str, list[Seen]] = {}
        for _, s in sorted(seen, key=lambda kv: kv[1].label):
            key = (
                s.label
                if s.label != "postgres backend"
                else "postgres backends (sum; RSS counts shared buffers in each)"
            )
            grouped.setdefault(key, []).append(s)
        for label, items in grouped.items():
            cpu = sum(s.cpu_last - s.cpu_first for s in items)
            peak = sum(s.rss_peak for s in items) if len(items) > 1 else items[0].rss_peak
            growth = ""
            if warm and end and len(items) == 1:
                s = items[0]
                if warm in s.rss_marks and end in s.rss_marks:
                    delta = (s.rss_marks[end] - s.rss_marks[warm]) / 2**20
                    growth = f"  {delta:+7.1f} MB after warm-up"
            lines.append(f"  {label:<34} {cpu:8.1f} CPU-s  peak RSS {peak / 2**20:7.1f} MB{growth}")
        return lines


def wait_until(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
