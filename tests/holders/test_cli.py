"""The reference holder's command line, its Django-free import path, and the portal's command."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from biometrics.holders.protocol import HolderUnavailable

from .harness import ROOT, embedding, new_id, running_holder

# Everything a vendor runs: ``python -m biometrics.reference_holder`` imports the package, which
# imports every layer, and the protocol module it shares with the portal's client.
STDLIB_ONLY = """
import sys
import biometrics.reference_holder, biometrics.reference_holder.http, biometrics.holders.client
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"django", "rest_framework"})
assert not leaked, leaked
"""


def test_the_holder_and_the_client_import_no_django():
    result = subprocess.run(
        [sys.executable, "-c", STDLIB_ONLY], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_help_describes_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "biometrics.reference_holder", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m biometrics.reference_holder")
    for option in ("--host", "--port", "--db", "--secret", "--secret-file", "--fail-first"):
        assert option in result.stdout


def test_the_portal_command_turns_on_the_holder_request_log(monkeypatch):
    """``manage.py run_reference_holder`` logs each request even when the portal's level is
    WARNING: the level it sets must reach the logger the holder writes to."""
    from django.core.management import call_command

    from biometrics.management.commands import run_reference_holder
    from biometrics.reference_holder import http

    seen = {}

    def fake_serve(host, port, db, secret, *, fail_first):
        seen["request_log_on"] = http.log.isEnabledFor(logging.INFO)

    monkeypatch.setattr(run_reference_holder, "serve", fake_serve)
    root, holder_logger = logging.getLogger(), logging.getLogger("biometrics.reference_holder")
    root_level, holder_level = root.level, holder_logger.level
    root.setLevel(logging.WARNING)
    try:
        call_command("run_reference_holder")
    finally:
        root.setLevel(root_level)
        holder_logger.setLevel(holder_level)
    assert seen == {"request_log_on": True}


def test_fail_first_makes_the_client_see_a_flaky_holder(tmp_path):
    with running_holder(tmp_path, "--fail-first", "2") as proc:  # /health is not counted
        client = proc.client()
        subject, template = new_id(), new_id()
        for _ in range(2):
            with pytest.raises(HolderUnavailable) as info:
                client.put_template(subject, template, embedding(), "m")
            assert info.value.status == 500
        assert client.put_template(subject, template, embedding(), "m")["created"] is True
        assert client.get_subject(subject)["templates"][0]["template"] == template
