"""School admin: scoping (a school-A staff member never reaches school-B objects), roster
import, campaigns, logged views, the dashboard."""

import base64
import csv
import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models.signals import pre_save
from django.urls import reverse
from django.utils import timezone

from biometrics import demo_photos
from biometrics.erasure import erasure_open
from biometrics.models import ErasureRequest, FaceTemplate, Holder, Photo, RecognitionEvent
from biometrics.services import photo_enrol
from consent.audit import audit_record
from consent.models import (
    AuditEvent,
    ConsentDecision,
    Guardian,
    NoticeDelivery,
    Notification,
    Purpose,
    RosterImport,
    StaffMembership,
    Student,
)
from consent.roster import roster_import, roster_job_create, roster_job_run, roster_job_watchdog
from consent.tasks import roster_import_task
from portal.exports import export_request
from portal.models import ConsentCampaign

from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, grant, guardian, link
from .factories import purpose_with_notice as make_purpose


def staff_user(django_user_model, school, group="School admin", name="staff"):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    StaffMembership.objects.create(user=user, school=school)
    return user


@pytest.fixture
def school_admin(django_user_model, school):
    return staff_user(django_user_model, school, name="admin_a")


@pytest.fixture
def other_school():
    return SchoolFactory(slug="school-b", name="School B")


@pytest.fixture
def school_b_objects(other_school, db):
    """One of everything, in school B."""
    purpose = make_purpose(other_school, "library")
    child = StudentFactory(school=other_school, name="Bee Child")
    parent = guardian("bee.parent@example.com", "Bee Parent")
    link(parent, child)
    decision = grant(child, purpose, parent)
    photo = photo_enrol(
        student=child, data=demo_photos.grace_hopper(), actor=TEST_ACTOR, process_now=True
    )
    event = RecognitionEvent.objects.create(
        student=child, purpose=purpose, device="d", distance=0.3, at=timezone.now()
    )
    holder = Holder.objects.create(
        school=other_school, name="B till", base_url="http://127.0.0.1:9", secret="x" * 12
    )
    erasure = erasure_open(student=child, trigger="staff", actor=TEST_ACTOR)
    export = export_request(student=child, guardian=parent)
    campaign = ConsentCampaign.objects.create(school=other_school, purpose=purpose)
    audit = audit_record("test.b", actor=TEST_ACTOR, school_id=other_school.pk, subject="x")
    return {
        Student: child,
        Guardian: parent,
        Purpose: purpose,
        ConsentDecision: decision,
        Photo: photo,
        FaceTemplate: FaceTemplate.objects.get(student=child),
        RecognitionEvent: event,
        Holder: holder,
        ErasureRequest: erasure,
        Notification: Notification.objects.get(guardianship__student=child),
        type(export): export,
        ConsentCampaign: campaign,
        AuditEvent: audit,
        type(other_school): other_school,
    }


def test_staff_of_school_a_never_reach_school_b(client, school_admin, school, school_b_objects):
    client.force_login(school_admin)
    checked = 0
    for model, obj in school_b_objects.items():
        assert model in admin.site._registry, model
        info = (model._meta.app_label, model._meta.model_name)
        listing = client.get(reverse(f"admin:{info[0]}_{info[1]}_changelist"))
        assert listing.status_code in (200, 403), model
        assert f"/{obj.pk}/change/" not in listing.content.decode(), model
        for view in ("change", "delete", "history"):
            r = client.get(reverse(f"admin:{info[0]}_{info[1]}_{view}", args=[obj.pk]))
            assert r.status_code in (403, 404), (model, view, r.status_code)
            checked += 1
        # an action posted with school B's id does nothing to it
        r = client.post(
            reverse(f"admin:{info[0]}_{info[1]}_changelist"),
            {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
        )
        assert r.status_code in (200, 302, 403)
        assert model.objects.filter(pk=obj.pk).exists(), model
    assert checked >= 3 * 12
    child = school_b_objects[Student]
    assert client.get(f"/admin/consent/student/{child.pk}/enrol/").status_code == 404
    # the refusal action cannot reach school B either
    client.post(
        reverse("admin:consent_student_changelist"),
        {"action": "record_child_refusal", "_selected_action": [child.pk]},
    )
    assert not ConsentDecision.objects.filter(student=child, guardian=None).exists()
    # and the roster page offers only school A
    page = client.get("/admin/roster/").content.decode()
    assert "School B" not in page


def test_enrolment_operator_cannot_see_templates(
    client, django_user_model, school, enrolled_child_a
):
    operator = staff_user(django_user_model, school, group="Enrolment operator", name="op")
    client.force_login(operator)
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    assert client.get(f"/admin/biometrics/facetemplate/{template.pk}/change/").status_code == 403
    assert client.get("/admin/biometrics/facetemplate/").status_code == 403
    r = client.post(
        f"/admin/consent/student/{enrolled_child_a.pk}/enrol/",
        {"image": SimpleUploadedFile("p.jpg", demo_photos.grace_hopper_half(), "image/jpeg")},
    )
    assert r.status_code == 302
    assert Photo.objects.filter(student=enrolled_child_a, source="admin").exists()


def test_admin_views_of_photos_and_templates_are_shown_to_the_parent(
    client, school_admin, enrolled_child_a, api_a
):
    client.force_login(school_admin)
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    photo = Photo.objects.get(student=enrolled_child_a)
    r = client.get(f"/admin/biometrics/facetemplate/{template.pk}/change/")
    assert r.status_code == 200
    assert "The 128 numbers" in r.content.decode()
    assert client.get(f"/admin/biometrics/photo/{photo.pk}/change/").status_code == 200
    log = api_a.get(f"/api/v1/children/{enrolled_child_a.pk}/").json()["access_log"]
    staff_views = [e for e in log if "School staff" in e["actor"]]
    assert {e["action"] for e in staff_views} == {
        "biometrics.template_viewed",
        "biometrics.photo_viewed",
    }


def test_decisions_and_audit_are_read_only_and_no_parent_grant_from_admin(
    client, school_admin, child_a
):
    client.force_login(school_admin)
    assert client.get("/admin/consent/consentdecision/add/").status_code == 403
    decision = ConsentDecision.objects.filter(student=child_a).first()
    r = client.post(f"/admin/consent/consentdecision/{decision.pk}/change/", {"decision": "grant"})
    assert r.status_code == 403
    assert client.get("/admin/consent/auditevent/add/").status_code == 403


def test_verify_chain_action(client, school_admin, child_a):
    client.force_login(school_admin)
    event = AuditEvent.objects.filter(school_id=child_a.school_id).first()
    r = client.post(
        "/admin/consent/auditevent/",
        {"action": "verify_chain", "_selected_action": [event.pk]},
        follow=True,
    )
    assert "Chain intact" in r.content.decode()


def roster_csv(n_students=2000, n_guardians=3500, bad_lines=()):
    rows = []
    g = 0
    for i in range(n_students):
        guardians = 2 if g + (n_students - i) < n_guardians else 1
        for _ in range(guardians):
            rows.append(
                {
                    "external_id": f"R{i:05d}",
                    "name": f"Student {i}",
                    "date_of_birth": "2015-09-01",
                    "class_name": f"Year {i % 6 + 1}",
                    "guardian_email": f"g{g}@example.com",
                    "guardian_name": f"Guardian {g}",
                    "parental_responsibility": "yes",
                    "guardian_language": "en",
                }
            )
            g += 1
    for index, bad in bad_lines:
        rows.insert(index, bad)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), g


def test_roster_import_of_2000_students_with_bad_rows(school, tmp_path, capsys):
    bad = [
        (10, {"external_id": "", "name": "No id"}),
        (500, {"external_id": "X1", "name": "Bad date", "date_of_birth": "31/12/2015"}),
        (
            1000,
            {
                "external_id": "X2",
                "name": "Bad mail",
                "guardian_email": "not-an-email",
                "guardian_name": "x",
            },
        ),
        (
            3000,
            {
                "external_id": "X3",
                "name": "Bad flag",
                "guardian_email": "ok@example.com",
                "guardian_name": "ok",
                "parental_responsibility": "maybe",
            },
        ),
    ]
    text, n_guardians = roster_csv(bad_lines=bad)
    assert n_guardians == 3500
    path = tmp_path / "roster.csv"
    path.write_text(text)
    call_command("import_roster", str(path), "--school", school.slug)
    out, err = capsys.readouterr()
    assert "2000 students created" in out
    assert "3500 guardian links" in out
    assert "4 errors" in out
    for line in (12, 502, 1002, 3002):  # header is line 1, inserted rows shift later ones
        assert f"line {line}:" in out
    assert "3504/3504" in err
    assert Student.objects.filter(school=school).count() == 2000
    # Every new guardian's notice is queued; nobody counts as notified before it is sent.
    assert NoticeDelivery.objects.filter(guardianship__student__school=school).count() == 3500
    assert not Notification.objects.filter(guardianship__student__school=school).exists()
    audit_before = AuditEvent.objects.count()
    call_command("import_roster", str(path), "--school", school.slug)
    again, _ = capsys.readouterr()
    assert "0 students created, 0 updated, 0 guardians created, 0 guardian links" in again
    assert AuditEvent.objects.count() == audit_before


def queued_roster_jobs() -> list[int]:
    """Ids of roster import tasks waiting on the real broker (filesystem or Redis); takes them
    off the queue."""

    def job_id(raw: bytes) -> int | None:
        message = json.loads(raw)
        if message["headers"]["task"] != "consent.tasks.roster_import_task":
            return None
        return json.loads(base64.b64decode(message["body"]))[0][0]

    found = []
    if settings.CELERY_BROKER_URL.startswith("redis"):
        import redis

        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        for raw in broker.lrange("default", 0, -1):
            if (pk := job_id(raw)) is not None:
                found.append(pk)
                broker.lrem("default", 1, raw)
        return found
    for path in (settings.BROKER_DIR / "queue").glob("*.default.msg"):
        if (pk := job_id(path.read_bytes())) is not None:
            found.append(pk)
            path.unlink()
    return found


def test_roster_import_page_queues_the_job_and_shows_the_report(
    client, school_admin, school, django_capture_on_commit_callbacks
):
    client.force_login(school_admin)
    queued_roster_jobs()
    text, _ = roster_csv(
        n_students=5, n_guardians=7, bad_lines=[(2, {"external_id": "", "name": "x"})]
    )
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            "/admin/roster/",
            {"school": school.pk, "csv": SimpleUploadedFile("r.csv", text.encode(), "text/csv")},
        )
    job = RosterImport.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/admin/roster/{job.pk}/"
    assert queued_roster_jobs() == [job.pk]  # the page queued it and did not import anything
    assert not Student.objects.filter(school=school).exists()
    waiting = client.get(r["Location"]).content.decode()
    assert 'http-equiv="refresh"' in waiting and "0 of 8 rows" in waiting

    roster_import_task(job.pk)  # what the worker does with the message

    page = client.get(r["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "8 rows: 5 students created, 0 updated, 7 guardians created, 7 links, 1 errors" in page
    assert "<td>4</td><td>external_id is empty</td>" in page
    job.refresh_from_db()
    assert job.status == "done" and job.csv_text == ""  # the roster is not kept
    assert Student.objects.filter(school=school).count() == 5
    listing = client.get("/admin/roster/").content.decode()
    assert f"/admin/roster/{job.pk}/" in listing


def test_roster_import_page_refuses_bad_files_with_a_message(client, school_admin, school):
    client.force_login(school_admin)
    cases = [
        (b"name,class\nA,1\n", "This is not a roster CSV: the CSV has no external_id column"),
        ("external_id,name\nA,Zoë\n".encode("utf-16"), "The file is not UTF-8 text"),
    ]
    for data, message in cases:
        r = client.post(
            "/admin/roster/",
            {"school": school.pk, "csv": SimpleUploadedFile("r.csv", data, "text/csv")},
        )
        assert r.status_code == 200
        assert message in r.content.decode()
    assert not RosterImport.objects.exists()


def test_roster_job_of_another_school_is_404(client, school_admin, other_school):
    job = RosterImport.objects.create(school=other_school, total_rows=1, csv_text="x")
    client.force_login(school_admin)
    assert client.get(f"/admin/roster/{job.pk}/").status_code == 404


def test_a_stopped_import_is_requeued_and_resumes_where_it_stopped(
    school, school_admin, django_capture_on_commit_callbacks
):
    text, _ = roster_csv(n_students=30, n_guardians=50)
    job = roster_job_create(school=school, data=text.encode(), filename="r.csv", user=school_admin)
    # A first run imports two chunks of 10, then its worker dies: the job stays "running".
    first = roster_job_run_chunks(job.pk, chunks=2)
    assert (first.status, first.rows_done) == ("running", 20)
    assert roster_job_watchdog() == []  # not stuck yet
    later = timezone.now() + timedelta(minutes=6)
    queued_roster_jobs()
    with django_capture_on_commit_callbacks(execute=True):  # as outside a transaction
        assert roster_job_watchdog(now=later) == [job.pk]
    assert queued_roster_jobs() == [job.pk]
    done = roster_job_run(job_id=job.pk, chunk_rows=10)
    assert (done.status, done.rows_done, done.attempts) == ("done", 50, 2)
    assert (done.students_created, done.guardians_created, done.links_created) == (30, 50, 50)
    assert Student.objects.filter(school=school).count() == 30
    assert roster_job_run(job_id=job.pk) == done  # a late duplicate delivery does nothing
    assert Student.objects.filter(school=school).count() == 30


def roster_job_run_chunks(job_id: int, *, chunks: int) -> RosterImport:
    """Run an import for `chunks` chunks only, as a worker killed after them would: the next
    chunk's commit is interrupted by an exception no `except Exception` catches."""
    committed = 0

    class Killed(BaseException):
        pass

    def count(**kwargs):
        nonlocal committed
        committed += 1
        if committed > chunks:
            raise Killed

    def before_save(sender, instance, update_fields=None, **kwargs):
        if instance.pk == job_id and instance.status == "running" and not update_fields:
            count()

    pre_save.connect(before_save, sender=RosterImport)
    try:
        roster_job_run(job_id=job_id, chunk_rows=10)
    except Killed:
        pass
    finally:
        pre_save.disconnect(before_save, sender=RosterImport)
    return RosterImport.objects.get(pk=job_id)


def test_campaign_emails_undecided_guardians_with_a_link_to_the_decision(
    client, school_admin, school, purposes, child_a, parent_a
):
    undecided = StudentFactory(school=school, class_name="Year 5")
    undecided_parent = guardian("undecided@example.com")
    link(undecided_parent, undecided)
    client.force_login(school_admin)
    r = client.post(
        "/admin/portal/consentcampaign/add/",
        {
            "school": school.pk,
            "purpose": purposes["gate_access"].pk,
            "class_name": "",
        },
    )
    assert r.status_code == 302
    assert [m.to for m in mail.outbox] == [["undecided@example.com"]]  # parent_a has decided
    body = mail.outbox[0].body
    token_url = next(line for line in body.splitlines() if "/sign-in/" in line)
    path = "/" + token_url.split("/", 3)[3]
    assert client.get(path).status_code == 200  # the page with the one "Sign in" button
    landed = client.post(path)
    assert landed["Location"] == f"/children/{undecided.pk}/#purposes"
    campaign = ConsentCampaign.objects.get()
    client.force_login(school_admin)  # the link signed this browser in as the parent
    page = client.get(f"/admin/portal/consentcampaign/{campaign.pk}/change/").content.decode()
    assert "1 granted" in page and "1 undecided" in page


def test_dashboard_shows_coverage_and_open_erasures(client, school_admin, enrolled_child_a):
    erasure_open(student=enrolled_child_a, trigger="staff", actor=TEST_ACTOR)
    client.force_login(school_admin)
    page = client.get("/admin/dashboard/").content.decode()
    assert "Gate Access" in page
    assert "Erasures open: <b>1</b>" in page


def test_students_changelist_shows_status_per_purpose_and_filters(
    client, school_admin, child_a, school
):
    StudentFactory(school=school, name="Nobody Decided")
    client.force_login(school_admin)
    page = client.get("/admin/consent/student/").content.decode()
    assert "gate_access: active" in page
    active = client.get("/admin/consent/student/?consent=active").content.decode()
    assert "Child A" in active and "Nobody Decided" not in active
    undecided = client.get("/admin/consent/student/?consent=undecided").content.decode()
    assert "Nobody Decided" in undecided and "Child A" not in undecided


def test_roster_service_reports_without_partial_rows(school):
    report = roster_import(school=school, rows=[{"external_id": "A", "name": ""}], actor=TEST_ACTOR)
    assert report.errors == [(2, "name is empty")]
    assert not Student.objects.filter(external_id="A").exists()
