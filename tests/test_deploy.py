"""Production posture (issue 12): the README's production environment passes
`check --deploy` and turns HSTS and secure cookies on; a missing secret stops the process; the
proxy headers are believed only when TRUSTED_PROXY_COUNT says so; every page carries a CSP and a
Permissions-Policy; the OpenAPI schema declares both credentials."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory

ROOT = Path(__file__).resolve().parent.parent
SECRET_VALUES = {
    "GUARDIAN_KEK_FILE": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    "GUARDIAN_SIGNING_KEY_FILE": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    "GUARDIAN_HASH_SALT_FILE": lambda: secrets.token_hex(16),
    "DJANGO_SECRET_KEY_FILE": lambda: secrets.token_urlsafe(50),
}


def readme_production_env(tmp_path: Path) -> dict[str, str]:
    """The `export` lines of the README's deployment block, the secret files made for real."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Deployment with PostgreSQL", 1)[1].split("```sh", 1)[1]
    block = block.split("```", 1)[0]
    env = {}
    for line in block.splitlines():
        if line.startswith("export "):
            for word in shlex.split(line[len("export ") :], comments=True):
                name, value = word.split("=", 1)
                env[name] = value
    for name, value in list(env.items()):
        if value.startswith("/run/secrets/"):
            path = tmp_path / Path(value).name
            path.write_text(SECRET_VALUES[name]() + "\n")
            env[name] = str(path)
    return env


def run(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """A fresh process with only this environment (nothing inherited from the test run)."""
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "GUARDIAN_VAR_DIR": str(tmp_path / "var"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=240
    )


SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER",
    "REFERENCE_HOLDER_SECRET")}))
"""


def settings_under(env: dict[str, str], tmp_path: Path) -> dict:
    done = run({"DJANGO_SETTINGS_MODULE": "portal.settings", **env}, tmp_path, "-c", SHOW_SETTINGS)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_readmes_production_environment(tmp_path):
    env = readme_production_env(tmp_path)
    done = run(env, tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "System check identified no issues" in done.stdout


def test_the_readmes_production_environment_turns_https_on(tmp_path):
    seen = settings_under(readme_production_env(tmp_path), tmp_path)
    assert seen["DEBUG"] is False
    assert seen["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert seen["SESSION_COOKIE_SECURE"] and seen["CSRF_COOKIE_SECURE"]
    assert seen["SECURE_SSL_REDIRECT"] is True
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["REFERENCE_HOLDER_SECRET"] == ""  # the demo holder's: not needed, not made up


def test_without_trusted_proxy_the_forwarded_proto_header_is_not_believed(tmp_path):
    env = readme_production_env(tmp_path)
    del env["TRUSTED_PROXY_COUNT"]
    assert settings_under(env, tmp_path)["SECURE_PROXY_SSL_HEADER"] is None


def test_a_client_cannot_claim_https_by_itself():
    request = RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https")
    assert not request.is_secure()
    assert request.build_absolute_uri("/x").startswith("http://")


@pytest.mark.parametrize(
    "missing",
    [
        "GUARDIAN_HASH_SALT_FILE",
        "GUARDIAN_KEK_FILE",
        "GUARDIAN_SIGNING_KEY_FILE",
        "DJANGO_SECRET_KEY_FILE",
    ],
)
def test_a_missing_secret_stops_the_process_and_names_it(tmp_path, missing):
    env = readme_production_env(tmp_path)
    del env[missing]
    done = run(env, tmp_path, "manage.py", "check")
    assert done.returncode != 0
    name = missing.removesuffix("_FILE")
    assert f"ImproperlyConfigured: Set {name} (or {name}_FILE" in done.stderr
    assert not (tmp_path / "var" / "dev-hash-salt").exists()  # nothing generated


def test_a_secret_file_that_cannot_be_read_or_a_short_key_is_refused(tmp_path):
    env = readme_production_env(tmp_path)
    done = run({**env, "GUARDIAN_KEK_FILE": str(tmp_path / "nope")}, tmp_path, "manage.py", "check")
    assert "GUARDIAN_KEK_FILE names" in done.stderr and done.returncode != 0
    short = tmp_path / "short"
    short.write_text(base64.b64encode(b"sixteen bytes!!!").decode())
    done = run({**env, "GUARDIAN_KEK_FILE": str(short)}, tmp_path, "manage.py", "check")
    assert "GUARDIAN_KEK must be 32 bytes" in done.stderr and done.returncode != 0


def test_the_embedded_default_generates_development_secrets_when_asked(tmp_path):
    """What `make run` does: nothing given, GUARDIAN_DEV_SECRETS=1, secrets made once in var/."""
    seen = settings_under({"GUARDIAN_DEV_SECRETS": "1"}, tmp_path)
    assert seen["SECURE_HSTS_SECONDS"] == 0 and not seen["SESSION_COOKIE_SECURE"]
    assert seen["REFERENCE_HOLDER_SECRET"]
    salt = (tmp_path / "var" / "dev-hash-salt").read_text()
    assert settings_under({"DJANGO_DEBUG": "1"}, tmp_path)["DEBUG"] is True  # DEBUG implies it
    assert (tmp_path / "var" / "dev-hash-salt").read_text() == salt  # made once, then shared


def test_makefile_asks_for_development_secrets():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^GUARDIAN_DEV_SECRETS \?= 1$", makefile, re.MULTILINE)
    assert re.search(r"^export .*GUARDIAN_DEV_SECRETS", makefile, re.MULTILINE)


# --- Headers ----------------------------------------------------------------------------------


def csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


@pytest.mark.parametrize("url", ["/sign-in/", "/admin/login/", "/api/v1/children/"])
def test_every_page_has_a_strict_csp_and_a_permissions_policy(client, db, url):
    response = client.get(url)
    policy = csp(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    permissions = response["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in permissions


def test_only_the_api_docs_page_allows_inline_styles(client, db):
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    policy = csp(docs)
    assert "'unsafe-inline'" in policy["style-src"]
    assert policy["script-src"] == ["'self'"]  # Swagger's own script is a file (split view)
    assert b"<script>" not in docs.content  # no inline script left on the page
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_hsts_is_sent_over_https_when_on(client, db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    response = client.get("/sign-in/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_the_schema_declares_the_bearer_and_api_key_schemes(client, db):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["Bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["Bearer"]["description"],
    }
    assert schemes["ApiKey"]["type"] == "apiKey" and schemes["ApiKey"]["name"] == "Authorization"
    children = schema["paths"]["/api/v1/children/"]["get"]["security"]
    assert {"Bearer": []} in children
    identify = schema["paths"]["/api/v1/identify/"]["post"]["security"]
    assert identify == [{"ApiKey": []}]
