"""End to end with a real Celery worker: a sign-in request queues only the attempt's id, and the
worker mails the link to a known address and nothing for an unknown one."""

import pytest
from rest_framework.test import APIClient

from portal.models import SignInAttempt

from ..processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_worker_mails_the_link_the_request_queued(stack, parent_a):
    api = APIClient(REMOTE_ADDR="198.51.100.20")
    for email in ("parent.a@example.com", "nobody@example.com"):
        r = api.post("/api/v1/auth/magic-link/", {"email": email}, format="json")
        assert r.status_code == 202

    def handled():
        return not SignInAttempt.objects.filter(outcome="queued").exists()

    try:
        wait_for(handled, timeout=60, what="the worker to handle both sign-in requests")
    except TimeoutError:
        pytest.fail("worker log:\n" + stack.worker.log()[-4000:])
    outcomes = dict(SignInAttempt.objects.values_list("guardian_id", "outcome"))
    assert outcomes == {parent_a.pk: "sent", None: "unknown"}
    assert "magic_link_send_task" in stack.worker.log()
    assert "/sign-in/" in stack.worker.log()  # the console mail backend printed the link
