"""Memory of a real web worker while bad uploads and bodies are refused (issue 12).

The product runs under gunicorn (one sync worker) on a throwaway var dir and database, and is
measured from outside, through /proc/<worker pid>/status: VmRSS (resident now) and VmHWM (the
peak since it was last reset; writing 5 to /proc/<pid>/clear_refs resets it).

1. The worker answers one GET and one refused upload (so the code that refusing needs is
   loaded), then idle = VmRSS, read after a pause.
2. For each input, `--repeat` times: reset the peak, send the request, read VmHWM. The worst
   peak minus idle is what the request cost the web process.

Inputs: the review's 49-megapixel PNG (7000 × 7000, ~60 KB) to the enrolment and identify
endpoints (refused from its header, before any decoding); a 12 MP JPEG phone photo with a face
(accepted: 202, stored encrypted, decoded later by the faces worker); a 50 MB JSON body (413)
and a 60 KB, 10,000-deep JSON body (400). For contrast, a separate process decodes the 49 MP
PNG as the web process used to (open, decode, detect): its peak over its idle.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import harness

STATUS_FIELDS = ("VmRSS", "VmHWM")


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in STATUS_FIELDS:
            values[key] = int(rest.split()[0]) / 1024
    return values


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def send(base: str, path: str, body: bytes | None, content_type: str, key: str) -> tuple[int, str]:
    """One request; the answer's status and the start of its body. A server that answers
    before reading a large body closes the connection on the rest: the answer still counts."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": content_type}
    try:
        try:
            conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer came before the whole body was sent
        try:
            response = conn.getresponse()
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return 0, "connection closed without an answer"
        return response.status, response.read().decode()[:120]
    finally:
        conn.close()


def png_49_megapixels() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (7000, 7000), 128).save(out, "PNG")
    return out.getvalue()


def phone_photo() -> bytes:
    """A 12 MP JPEG with a real face (the demo's Grace Hopper, scaled up)."""
    from PIL import Image

    from biometrics import demo_photos

    face = Image.open(io.BytesIO(demo_photos.grace_hopper())).convert("RGB")
    out = io.BytesIO()
    face.resize((3000, 4000)).save(out, "JPEG", quality=90)
    return out.getvalue()


DECODE_AS_BEFORE = """
import io, resource, sys, django
django.setup()
from biometrics import faces
from biometrics.image_checks import ImageRejected
faces.warm_up()
data = open(sys.argv[1], "rb").read()
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    faces.find_single_face(faces.open_image(data))
except ImageRejected as exc:
    outcome = exc.code
print(idle, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, outcome)
"""


def decode_contrast(png: bytes, var_dir: Path) -> tuple[float, float, str]:
    """What decoding the PNG costs a process (as the web process did before): peak over idle,
    with the old 50 MP limit for PNGs."""
    path = var_dir / "49mp.png"
    path.write_bytes(png)
    env = {**os.environ, "FACE_MAX_PIXELS_PNG_WEBP": "50000000"}
    done = subprocess.run(
        [sys.executable, "-c", DECODE_AS_BEFORE, str(path)],
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    idle, peak, outcome = done.stdout.split()
    return float(idle), float(peak), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the var dir")
    args = parser.parse_args()

    var_dir = harness.configure("guardian-bench-upload-")
    harness.django_setup()
    harness.migrate()
    from consent.services import guardian_get_or_create
    from portal.auth import api_key_create

    school, purposes = harness.school_create("bench-upload", "Bench", ["gate_access"])
    parent = guardian_get_or_create(email="parent@bench.example", name="P")
    child = harness.child_with_consent(
        school, parent, [purposes["gate_access"]], external_id="B-1", name="Bench Child"
    )
    _, key = api_key_create(school=school, scopes=["enrol", "identify"])

    port = free_port()
    log = (var_dir / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [
            str(harness.ROOT / ".venv/bin/gunicorn"),
            "portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--timeout",
            "120",
        ],
        cwd=harness.ROOT,
        env=os.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit((var_dir / "gunicorn.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        (worker,) = children_of(server.pid)

        png = png_49_megapixels()
        photo = phone_photo()
        photos_path = f"/api/v1/staff/students/{child.pk}/photos/"
        inputs = {
            "49 MP PNG (60 KB) → enrolment": (
                photos_path,
                *multipart({}, {"image": ("big.png", png)}),
            ),
            "49 MP PNG (60 KB) → identify": (
                "/api/v1/identify/",
                *multipart({"purpose": "gate_access"}, {"image": ("big.png", png)}),
            ),
            "12 MP JPEG phone photo → enrolment (accepted)": (
                photos_path,
                *multipart({}, {"image": ("photo.jpg", photo)}),
            ),
            "50 MB JSON → identify": (
                "/api/v1/identify/",
                b'{"purpose": "gate_access", "pad": "' + b"x" * 50_000_000 + b'"}',
                "application/json",
            ),
            "60 KB JSON, 10,000 deep → identify": (
                "/api/v1/identify/",
                b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                "application/json",
            ),
        }
        # Warm-up: a GET and one refused upload load the code that refusing needs.
        send(base, "/api/v1/staff/photos/" + str(uuid.uuid4()) + "/", None, "text/plain", key)
        send(base, photos_path, *multipart({}, {"image": ("x.png", b"not an image")}), key)
        time.sleep(1.0)
        idle = proc_status(worker)["VmRSS"]

        print(f"# Web worker memory while bad input is refused ({harness.machine()})")
        print(f"load average {harness.load_average()}; gunicorn, 1 sync worker, pid {worker}")
        print(f"idle RSS (after a GET and one refused upload): {idle:.1f} MB\n")
        print("| request | answer | idle RSS MB | peak RSS MB | delta MB |")
        print("|---|---|---:|---:|---:|")
        for label, (path, body, content_type) in inputs.items():
            peaks, answer = [], ""
            for _ in range(args.repeat):
                reset_peak(worker)
                status, text = send(base, path, body, content_type, key)
                peaks.append(proc_status(worker)["VmHWM"])
                code = json.loads(text).get("error", "") if text.startswith("{") else ""
                answer = f"{status} {code}".strip()
            peak = max(peaks)
            print(f"| {label} | {answer} | {idle:.1f} | {peak:.1f} | {peak - idle:+.1f} |")

        before_idle, before_peak, outcome = decode_contrast(png, var_dir)
        print(
            f"\nFor contrast, decoding the 49 MP PNG in a process (as the web process did before, "
            f"with the old 50 MP limit; {outcome}): idle {before_idle:.0f} MB, "
            f"peak {before_peak:.0f} MB, delta {before_peak - before_idle:+.0f} MB"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        harness.finish(var_dir, keep=args.keep)


if __name__ == "__main__":
    main()
