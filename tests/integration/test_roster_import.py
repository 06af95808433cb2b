"""End to end with a real Celery worker: the admin roster page queues the import, the worker
runs it on the `default` queue, and the page shows its progress and then the report."""

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile

from consent.models import NoticeDelivery, RosterImport, StaffMembership, Student

from ..processes import wait_for
from ..test_admin import roster_csv

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_admin_page_queues_the_import_and_the_worker_runs_it(
    stack, client, school, django_user_model
):
    staff = django_user_model.objects.create_user("roster_staff", password="pw", is_staff=True)
    staff.groups.add(Group.objects.get(name="School admin"))
    StaffMembership.objects.create(user=staff, school=school)
    client.force_login(staff)
    text, _ = roster_csv(
        n_students=300, n_guardians=450, bad_lines=[(100, {"external_id": "", "name": "x"})]
    )
    r = client.post(
        "/admin/roster/",
        {"school": school.pk, "csv": SimpleUploadedFile("r.csv", text.encode(), "text/csv")},
    )
    assert r.status_code == 302
    job = RosterImport.objects.get()

    try:
        wait_for(
            lambda: RosterImport.objects.get(pk=job.pk).finished,
            timeout=120,
            what="the worker to finish the import",
        )
    except TimeoutError:
        pytest.fail("worker log:\n" + stack.worker.log()[-4000:])

    page = client.get(r["Location"]).content.decode()
    assert "451 rows: 300 students created, 0 updated, 450 guardians created, 450 links" in page
    assert "<td>102</td><td>external_id is empty</td>" in page
    assert 'http-equiv="refresh"' not in page
    job.refresh_from_db()
    assert (job.status, job.csv_text, job.attempts) == ("done", "", 1)
    assert Student.objects.filter(school=school).count() == 300
    assert "roster_import_task" in stack.worker.log()
    # Each parent linked is sent the school's notice by the worker (and the test ends with the
    # worker idle, not writing while the database is emptied for the next test).
    wait_for(
        lambda: NoticeDelivery.objects.filter(status=NoticeDelivery.Status.SENT).count() == 450,
        timeout=120,
        what="the worker to send the notice to each of the 450 parents",
    )
    assert not NoticeDelivery.objects.exclude(status=NoticeDelivery.Status.SENT).exists()
