"""Helpers for the holder tests: a reference holder run as a real process, and raw HTTP to it.

No Django here: the reference holder is a standalone stdlib service, and these helpers talk to
it over HTTP only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from biometrics.holders.client import HolderClient
from biometrics.holders.protocol import signed_headers

ROOT = Path(__file__).resolve().parents[2]

SECRET = "correct horse battery staple"
MARKER = 0.123456789  # a distinctive embedding value that must never reach the log


def new_id() -> str:
    return str(uuid.uuid4())


def embedding(seed: float = 0.0) -> list[float]:
    return [MARKER + seed + i / 1000 for i in range(128)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Running the holder as a separate process
# --------------------------------------------------------------------------------------------


class HolderProcess:
    def __init__(self, db: Path, log: Path, *extra: str, secret: str = SECRET) -> None:
        self.db = db
        self.log = log
        self.extra = extra
        self.secret = secret
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, secret: str | None = None, timeout: float = 5.0) -> HolderClient:
        return HolderClient(self.url, self.secret if secret is None else secret, timeout)

    def start(self, keep_port: bool = False) -> HolderProcess:
        if not (keep_port and self.port):
            self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDER_")}
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "biometrics.reference_holder",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--secret",
            self.secret,
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"holder exited with {self.proc.returncode}:\n{self.log_text()}")
            status, body = raw_request(self, "GET", "/health", signed=False)
            if status == 200 and body == {"ok": True}:
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"holder did not become healthy:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_holder(tmp_path: Path, *extra: str, name: str = "holder"):
    holder = HolderProcess(tmp_path / f"{name}.sqlite3", tmp_path / f"{name}.log", *extra)
    holder.start()
    try:
        yield holder
    finally:
        holder.stop()


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def raw_request(
    holder: HolderProcess,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    signed: bool = True,
    secret: str = SECRET,
    now: float | None = None,
    sign_body: bytes | None = None,
    sign_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int | None, object]:
    """One request through plain urllib; returns (status, decoded JSON or text)."""
    all_headers = {"Content-Type": "application/json"}
    if signed:
        all_headers.update(
            signed_headers(
                secret,
                method,
                path if sign_path is None else sign_path,
                body if sign_body is None else sign_body,
                now=now,
            )
        )
    all_headers.update(headers or {})
    request = urllib.request.Request(
        holder.url + path,
        data=body if (body or method in ("PUT", "POST")) else None,
        headers=all_headers,
        method=method,
    )
    try:
        with _opener.open(request, timeout=5) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
        exc.close()
    except (urllib.error.URLError, OSError):
        return None, None
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode("utf-8", "replace")


def put_body(vector=None, model="dlib-resnet-v1") -> bytes:
    return json.dumps(
        {"embedding": embedding() if vector is None else vector, "model": model}
    ).encode()


def post_event(
    holder: HolderProcess,
    subject: str,
    device: str,
    purpose: str,
    distance: float,
    at: str | None = None,
) -> dict:
    """POST /events as a gate or till would (the portal's client never sends events)."""
    event = {"subject": subject, "device": device, "purpose": purpose, "distance": distance}
    if at is not None:
        event["at"] = at
    status, body = raw_request(holder, "POST", "/events", json.dumps(event).encode())
    assert status == 201, body
    return body
