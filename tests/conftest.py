"""Shared fixtures. Authorization fixtures follow the naming in STYLE.md: parent_a, parent_b."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify
from biometrics.models import Holder, RecognitionEvent, TemplateCopy
from biometrics.services import photo_enrol, template_copy_push
from portal.auth import api_token_issue

from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, grant, guardian, link
from .factories import purpose_with_notice as make_purpose
from .processes import start_holder

IN_CI = os.environ.get("CI", "").lower() == "true"
MUST_RUN = ("integration", "browser")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true an integration or browser test that skips has failed: CI never skips them."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and any(item.get_closest_marker(m) for m in MUST_RUN):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} was skipped, which CI does not allow: {report.longrepr}"


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true, a run that selected integration tests must have passed some."""
    if not IN_CI or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = reporter.stats.get("passed", []) if reporter else []
    if not any("integration" in r.keywords for r in passed):
        selected = session.config.getoption("markexpr") or ""
        if "not integration" not in selected:
            print("\nCI=true but no integration test passed.")
            session.exitstatus = 1


DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences"}


def pytest_collection_modifyitems(config, items):
    """Every database test may use both databases: the main one and the key store.

    Tests marked needs_redis run only when Redis is the broker (deselected, not skipped,
    otherwise: the embedded run has no Redis to restart).
    """
    from django.conf import settings as django_settings

    if not django_settings.CELERY_BROKER_URL.startswith("redis"):
        deselected = [i for i in items if i.get_closest_marker("needs_redis")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [i for i in items if not i.get_closest_marker("needs_redis")]
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None and not DB_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            continue
        kwargs = dict(marker.kwargs) if marker else {}
        kwargs["databases"] = "__all__"
        item.add_marker(pytest.mark.django_db(**kwargs), append=False)


@pytest.fixture(autouse=True)
def _default_language():
    """A request in another language leaves it active in the thread: reset it after each test."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(autouse=True)
def media_dir(tmp_path, settings):
    """Each test writes photo files to its own folder, so "no file stored" is checkable."""
    media = tmp_path / "media"
    media.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media)},
        },
    }
    return media


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, settings):
    """Each test keeps its audit checkpoints in a folder of its own."""
    folder = tmp_path / "audit-checkpoints"
    settings.AUDIT_CHECKPOINT_DIR = folder
    return folder


@pytest.fixture
def sent_jobs(monkeypatch):
    """Tasks queued through consent.jobs, captured as (task name, args) instead of sent."""
    from portal.celery import app

    sent = []
    monkeypatch.setattr(
        app, "send_task", lambda name, args=None, **options: sent.append((name, args))
    )
    return sent


@pytest.fixture
def school(db):
    return SchoolFactory(slug="test-school", name="Test School")


@pytest.fixture
def purposes(school):
    return {code: make_purpose(school, code) for code in ("gate_access", "attendance")}


@pytest.fixture
def parent_a(db):
    return guardian("parent.a@example.com", "Parent A")


@pytest.fixture
def parent_b(db):
    return guardian("parent.b@example.com", "Parent B")


@pytest.fixture
def child_a(school, purposes, parent_a):
    """Parent A's child, with gate_access granted."""
    child = StudentFactory(school=school, name="Child A")
    link(parent_a, child)
    grant(child, purposes["gate_access"], parent_a)
    return child


@pytest.fixture
def child_b(school, purposes, parent_b):
    child = StudentFactory(school=school, name="Child B")
    link(parent_b, child)
    grant(child, purposes["gate_access"], parent_b)
    return child


@pytest.fixture
def enrolled_child_a(child_a):
    """Child A with one real enrolment (Grace Hopper's portrait) through face_recognition."""
    photo_enrol(
        student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR, process_now=True
    )
    return child_a


def bearer_client(g) -> APIClient:
    client = APIClient()
    token, _ = api_token_issue(guardian=g)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_a(parent_a):
    return bearer_client(parent_a)


@pytest.fixture
def api_b(parent_b):
    return bearer_client(parent_b)


@pytest.fixture
def web_a(client, parent_a):
    client.force_login(parent_a.user)
    return client


@pytest.fixture
def web_b(client, parent_b):
    client.force_login(parent_b.user)
    return client


@pytest.fixture
def kek():
    return settings.GUARDIAN_KEK


# --- A reference holder process, and a child whose copy it holds ---------------------------


@pytest.fixture(scope="module")
def holder_proc(tmp_path_factory):
    proc = start_holder(tmp_path_factory.mktemp("holder"))
    yield proc
    proc.stop()


@pytest.fixture
def holder(school, holder_proc):
    return Holder.objects.create(
        school=school,
        name="Gate controller",
        base_url=holder_proc.info["url"],
        secret=holder_proc.info["secret"],
    )


@pytest.fixture
def held_child(holder, child_a, purposes):
    """Child A enrolled, with the template copy stored in the holder and a recognition event."""
    photo_enrol(
        student=child_a, data=demo_photos.grace_hopper(), actor=TEST_ACTOR, process_now=True
    )
    for copy in TemplateCopy.objects.filter(template__student=child_a):
        template_copy_push(copy_id=copy.pk)
    identify(
        school=child_a.school,
        purpose=purposes["gate_access"],
        embedding=embedding_from_photo(demo_photos.grace_hopper_half()),
        device="Gate",
    )
    assert RecognitionEvent.objects.filter(student=child_a).count() == 1
    return child_a
