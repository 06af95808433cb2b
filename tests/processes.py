"""Real processes for integration tests: a Celery worker and reference holders.

They run as separate OS processes against the test database (SQLite file or PostgreSQL) and
the configured broker (kombu's filesystem transport, or Redis), exactly as in production.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(alias: str) -> str:
    """A URL for the database this test process is using now (the test database)."""
    db = connections[alias].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        GUARDIAN_VAR_DIR=str(settings.VAR_DIR),
        DATABASE_URL=database_url("default"),
        KEYSTORE_DATABASE_URL=database_url("keys"),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        # The tests' reference holders listen on 127.0.0.1, on PostgreSQL too.
        HOLDER_ALLOW_PRIVATE_ADDRESSES="1" if settings.HOLDER_ALLOW_PRIVATE_ADDRESSES else "0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    info: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the main process (a Celery worker stops its own pool), then clean up the group."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _spawn(name: str, args: list[str], log_dir: Path, env: dict[str, str]) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    fh = open(log_path, "ab")
    popen = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Proc(name, popen, log_path)


def purge_filesystem_broker() -> None:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        for sub in ("queue", "processed"):
            folder = settings.BROKER_DIR / sub
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
    else:
        from portal.celery import app

        with app.connection_for_write() as conn:
            for queue in ("default", "faces", "erasure"):
                conn.default_channel.queue_purge(queue) if _queue_exists(conn, queue) else None


def _queue_exists(conn, queue: str) -> bool:
    try:
        conn.default_channel.queue_declare(queue=queue, passive=True)
    except Exception:
        return False
    return True


def start_worker(
    log_dir: Path,
    *,
    queues: str = "default,faces,erasure",
    concurrency: int = 2,
    name: str = "worker",
    **env_extra: str,
) -> Proc:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}-{secrets.token_hex(3)}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    proc = _spawn(name, args, log_dir, process_env(**env_extra))
    wait_for(
        lambda: "ready." in proc.log() or proc.popen.poll() is not None,
        timeout=90,
        what="the Celery worker to start",
    )
    if proc.popen.poll() is not None:
        raise RuntimeError(f"Celery worker exited:\n{proc.log()[-3000:]}")
    return proc


def start_holder(
    log_dir: Path,
    *,
    name: str = "holder",
    port: int | None = None,
    db_path: Path | None = None,
    secret: str | None = None,
    fail_first: int = 0,
    delay_ms: int = 0,
    tenants: dict[str, str] | None = None,
    wait: bool = True,
) -> Proc:
    """A reference holder process. `tenants` ({name: secret}) adds schools of its own to the
    default tenant (`secret`); `info["clients"]` has a client per tenant. `wait=False` returns
    as soon as it is spawned: call `holder_wait` before using it (so several start at once)."""
    from biometrics.holders.client import HolderClient

    port = port or free_port()
    secret = secret or secrets.token_hex(16)
    db_path = db_path or (log_dir / f"{name}.sqlite3")
    tenant_args = []
    for tenant, tenant_secret in (tenants or {}).items():
        secret_file = log_dir / f"{name}-{tenant}.secret"
        secret_file.write_text(tenant_secret)
        secret_file.chmod(0o600)
        tenant_args += ["--tenant", f"{tenant}={secret_file}"]
    args = [
        sys.executable,
        "-m",
        "biometrics.reference_holder",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db_path),
        "--fail-first",
        str(fail_first),
        "--delay-ms",
        str(delay_ms),
        *tenant_args,
    ]
    proc = _spawn(name, args, log_dir, {**os.environ, "HOLDER_SECRET": secret})
    url = f"http://127.0.0.1:{port}"
    client = HolderClient(url, secret, timeout=max(2, 3 * delay_ms / 1000))
    proc.info = {
        "url": url,
        "secret": secret,
        "port": port,
        "db": db_path,
        "client": client,
        "tenants": dict(tenants or {}),
        "clients": {t: HolderClient(url, s, timeout=2) for t, s in (tenants or {}).items()},
    }
    return holder_wait(proc) if wait else proc


def holder_wait(proc: Proc) -> Proc:
    """Wait until a holder started with `wait=False` answers its health check."""
    wait_for(
        lambda: proc.info["client"].health() or proc.popen.poll() is not None,
        timeout=20,
        what=f"the reference holder on {proc.info['url']}",
    )
    if proc.popen.poll() is not None:
        raise RuntimeError(f"reference holder exited:\n{proc.log()[-3000:]}")
    return proc


def start_holders(log_dirs: dict[str, Path], **kwargs) -> dict[str, Proc]:
    """Several reference holders ({name: log folder}), started side by side, all answering."""
    procs = {
        name: start_holder(folder, name=name, wait=False, **kwargs)
        for name, folder in log_dirs.items()
    }
    return {name: holder_wait(proc) for name, proc in procs.items()}
