"""Issue 12's attacks, each reproduced as the review ran it and now refused: a school taking
over another school's parent (1), a staff account taken over through a guardian (2), the
notification forms (3), the beat schedules (4) and the holder's secret and address (6). Also
the onboarding commands and the admin's sign-in throttle."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from biometrics.holder_guard import URL_CREDENTIALS, URL_PRIVATE, URL_SCHEME
from biometrics.holders.protocol import HolderUnavailable
from biometrics.models import Holder
from biometrics.services import holder_create, holder_update
from consent.accounts import AccountsKeptApart, is_guardian_account
from consent.actors import Actor
from consent.models import (
    AuditEvent,
    Guardian,
    Guardianship,
    Notification,
    NotificationException,
    StaffMembership,
)
from consent.roster import roster_import
from consent.services import (
    GUARDIAN_EMAIL_IS_THEIRS,
    ROLE_GROUPS,
    ConsentError,
    guardian_get_or_create,
    guardian_update,
    staff_membership_create,
)
from portal.auth import api_key_create, magic_link_request
from portal.staff_groups import GROUPS, staff_groups_sync

from .factories import TEST_ACTOR, SchoolFactory, StudentFactory, guardian, link
from .test_admin import staff_user
from .test_consent_status import page_form


@pytest.fixture
def school_b():
    return SchoolFactory(slug="school-b", name="School B")


@pytest.fixture
def staff_b(django_user_model, school_b):
    return staff_user(django_user_model, school_b, name="staffb")


@pytest.fixture
def bobby(school_b):
    return StudentFactory(school=school_b, name="Bobby Bee")


def key_client(school) -> APIClient:
    _, secret = api_key_create(school=school, scopes=["roster"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def audit_since(mark: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=mark).order_by("pk"))


def last_event() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


# --- 1. Cross-school parent takeover ---------------------------------------------------------


def test_another_school_cannot_take_over_a_parent(
    client, staff_b, bobby, school_b, child_a, parent_a
):
    """School B's admin tried: link A's parent in the inline, change their email, sign in by
    link. Each step is refused; linking by address (API, roster) links the parent as they
    are; nothing reaches A's child."""
    client.force_login(staff_b)
    page = reverse("admin:consent_student_change", args=[bobby.pk])
    form = page_form(client, page)
    # The inline neither offers A's parent (autocomplete) nor accepts their id.
    found = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "consent",
            "model_name": "guardianship",
            "field_name": "guardian",
            "term": "parent",
        },
    )
    assert found.status_code == 200 and found.json()["results"] == []
    r = client.post(
        page,
        {
            **form,
            "guardianships-TOTAL_FORMS": "1",
            "guardianships-0-guardian": str(parent_a.pk),
            "guardianships-0-parental_responsibility": "on",
        },
    )
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()
    assert not Guardianship.objects.filter(guardian=parent_a, student=bobby).exists()
    # A's parent is not B's to open, let alone edit.
    assert (
        client.get(reverse("admin:consent_guardian_change", args=[parent_a.pk])).status_code == 404
    )
    assert (
        client.post(
            reverse("admin:consent_guardian_change", args=[parent_a.pk]),
            {"email": "attacker@evil.example", "name": "X", "language": "en"},
        ).status_code
        == 404
    )

    # B links A's parent by address with its roster key and its roster CSV: allowed (a parent
    # with children at two schools), but nothing of the parent's changes, and it is audited.
    mark = last_event()
    r = key_client(school_b).post(
        "/api/v1/staff/guardians/",
        {
            "email": "Parent.A@Example.com",
            "name": "Someone Else",
            "student_ids": [str(bobby.pk)],
            "language": "zh-hans",
        },
        format="json",
    )
    assert (r.status_code, r.json()["id"]) == (201, parent_a.pk)
    report = roster_import(
        school=school_b,
        rows=[
            {
                "external_id": "B-2",
                "name": "Bee Two",
                "guardian_email": "parent.a@example.com",
                "guardian_name": "Renamed",
                "guardian_language": "zh-hans",
            }
        ],
        actor=Actor.staff(staff_b),
    )
    assert report.errors == [] and report.links_created == 1 and report.guardians_created == 0
    before = (parent_a.email, parent_a.name, parent_a.language, parent_a.user_id)
    parent_a.refresh_from_db()
    assert (parent_a.email, parent_a.name, parent_a.language, parent_a.user_id) == before
    linked = [e for e in audit_since(mark) if e.action == "roster.guardian_linked"]
    assert len(linked) == 2 and {e.school_id for e in linked} == {school_b.pk}
    assert all(e.data["guardian"] == parent_a.pk for e in linked)

    # Now B sees the parent, but their address, name and language are read-only to B.
    change = reverse("admin:consent_guardian_change", args=[parent_a.pk])
    shown = client.get(change).content.decode()
    assert 'name="email"' not in shown and 'name="name"' not in shown
    assert "children at another school" in shown
    client.post(change, {"email": "attacker@evil.example", "name": "X", "language": "en"})
    parent_a.refresh_from_db()
    assert (parent_a.email, parent_a.name) == ("parent.a@example.com", "Parent A")
    # The service refuses an address change from staff and API keys, whoever calls it.
    for actor in (Actor.staff(staff_b), Actor("api_key", "1", "key")):
        with pytest.raises(ConsentError) as refused:
            guardian_update(guardian=parent_a, email="attacker@evil.example", actor=actor)
        assert refused.value.code == "email_not_yours"
        assert refused.value.detail == GUARDIAN_EMAIL_IS_THEIRS
    # So a sign-in link for the attacker's address goes nowhere.
    magic_link_request(email="attacker@evil.example")
    assert mail.outbox == []
    assert not Guardian.objects.filter(email="attacker@evil.example").exists()
    # The guardian themselves may change it (their confirmed change), audited without it.
    guardian_update(guardian=parent_a, email="new.a@example.com", actor=Actor.guardian(parent_a))
    event = AuditEvent.objects.filter(action="roster.guardian_changed").latest("pk")
    assert event.data["changes"] == {"email": "changed"}
    assert "new.a@example.com" not in json.dumps(event.data)


def test_adding_a_guardian_in_admin_links_an_existing_one_as_they_are(
    client, staff_b, bobby, school_b, child_a, parent_a
):
    """School B adds a parent it shares with school A by their address: the parent is linked
    to B's child, keeps their name and account, and signs in once to see both children."""
    client.force_login(staff_b)
    add = reverse("admin:consent_guardian_add")
    page = client.get(add).content.decode()
    assert str(child_a.pk) not in page and "Child A" not in page  # only B's children offered
    mark = last_event()
    r = client.post(
        add,
        {
            "email": "parent.a@example.com",
            "name": "Renamed By B",
            "language": "zh-hans",
            "student": str(bobby.pk),
            "parental_responsibility": "on",
        },
        follow=True,
    )
    assert r.status_code == 200
    assert "linked to the child as they are" in r.content.decode()
    parent_a.refresh_from_db()
    assert (parent_a.name, parent_a.language) == ("Parent A", "")  # not chosen, as before
    assert set(parent_a.students.all()) == {child_a, bobby}
    assert [e.action for e in audit_since(mark)] == ["roster.guardian_linked"]
    # A's child is not B's to pick, even by a forged id.
    r = client.post(
        add,
        {"email": "x@example.com", "name": "X", "language": "en", "student": str(child_a.pk)},
    )
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()
    assert not Guardian.objects.filter(email="x@example.com").exists()


def test_a_guardian_of_one_school_only_is_corrected_by_that_school(client, school, parent_a):
    """The other side of the rule: a school's own guardian's name is the school's to correct
    (the address still is not)."""
    child = StudentFactory(school=school)
    link(parent_a, child)
    from django.contrib.auth import get_user_model

    client.force_login(staff_user(get_user_model(), school, name="staffa"))
    change = reverse("admin:consent_guardian_change", args=[parent_a.pk])
    data = page_form(client, change)
    assert "email" not in data
    r = client.post(change, {**data, "name": "Parent A Corrected", "email": "x@evil.example"})
    assert r.status_code == 302
    parent_a.refresh_from_db()
    assert (parent_a.name, parent_a.email) == ("Parent A Corrected", "parent.a@example.com")


# --- 2. Staff takeover through a guardian ------------------------------------------------------


def test_a_guardian_with_a_staff_address_never_touches_the_staff_account(
    client, django_user_model, school, school_b, bobby
):
    teacher = staff_user(django_user_model, school, name="teacher@demo.example")
    teacher.set_password("a-long-teacher-phrase")
    teacher.save()
    r = key_client(school_b).post(
        "/api/v1/staff/guardians/",
        {"email": "Teacher@Demo.Example", "name": "T", "student_ids": [str(bobby.pk)]},
        format="json",
    )
    assert r.status_code == 201
    made = Guardian.objects.get(pk=r.json()["id"])
    teacher.refresh_from_db()
    assert made.user_id != teacher.pk
    assert teacher.check_password("a-long-teacher-phrase") and teacher.is_staff
    assert not made.user.is_staff and not made.user.has_usable_password()
    assert made.user.username.startswith("guardian:")
    # The teacher still signs in to admin with their password.
    signed_in = client.post(
        "/admin/login/?next=/admin/",
        {"username": "teacher@demo.example", "password": "a-long-teacher-phrase"},
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/admin/"
    # The guardian's session (as a sign-in link gives it) never enters the admin.
    client.force_login(made.user)
    assert client.get("/admin/").status_code == 302
    assert client.get(reverse("admin:consent_student_changelist")).status_code == 302
    # And no code path can make either account the other.
    made.user.is_staff = True
    with pytest.raises(AccountsKeptApart):
        made.user.save()
    with pytest.raises(AccountsKeptApart):
        Guardian.objects.create(user=teacher, email="other@example.com", name="O")
    with pytest.raises(ConsentError):
        staff_membership_create(
            user=Guardian.objects.get(pk=made.pk).user, school=school, actor=TEST_ACTOR
        )
    # The platform's account pages do not list guardians' accounts, nor offer them as staff.
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    users = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "guardian:" not in users and "teacher@demo.example" in users
    form = client.get(reverse("admin:consent_staffmembership_add")).content.decode()
    assert "guardian:" not in form
    assert client.get(reverse("admin:auth_user_change", args=[made.user_id])).status_code in (
        302,
        404,
    )


def test_the_migration_gives_each_guardian_an_account_of_their_own(transactional_db):
    """An earlier version reused the staff account named like a guardian's address; migrating
    gives such a guardian a new account and leaves the staff account to its owner."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("consent", "0003_consent_status_fill")])
    old = executor.loader.project_state([("consent", "0003_consent_status_fill")]).apps
    User, OldGuardian = old.get_model("auth", "User"), old.get_model("consent", "Guardian")
    staff = User.objects.create(username="teacher@demo.example", is_staff=True, password="!x")
    plain = User.objects.create(username="parent@example.com", password="!x")
    shared = OldGuardian.objects.create(user=staff, email="teacher@demo.example", name="T")
    own = OldGuardian.objects.create(user=plain, email="parent@example.com", name="P")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    shared, own = Guardian.objects.get(pk=shared.pk), Guardian.objects.get(pk=own.pk)
    assert shared.user_id != staff.pk and shared.user.username.startswith("guardian:")
    assert not shared.user.is_staff
    staff_after = User.objects.get(pk=staff.pk)
    assert (staff_after.username, staff_after.is_staff) == ("teacher@demo.example", True)
    assert own.user_id == plain.pk and own.user.username.startswith("guardian:")


# --- 3. The notification forms ----------------------------------------------------------------


def test_notification_forms_offer_and_accept_only_the_schools_own_links(
    client, staff_b, bobby, child_a, parent_a
):
    b_parent = guardian("bee.parent@example.com", "Bee Parent")
    b_link = link(b_parent, bobby, notified=False)
    a_link = Guardianship.objects.get(guardian=parent_a, student=child_a)
    client.force_login(staff_b)
    for model in ("notification", "notificationexception"):
        page = client.get(f"/admin/consent/{model}/add/").content.decode()
        assert f'value="{b_link.pk}"' in page, model
        assert f'value="{a_link.pk}"' not in page and "parent.a@example.com" not in page, model
        assert 'name="recorded_by"' not in page  # no list of every account to pick from
    mark = last_event()
    notified = Notification.objects.count()
    r = client.post(
        "/admin/consent/notification/add/",
        {
            "guardianship": a_link.pk,
            "method": "letter",
            "sent_at_0": "2025-09-01",
            "sent_at_1": "9:00",
        },
    )
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()
    r = client.post(
        "/admin/consent/notificationexception/add/",
        {"guardianship": a_link.pk, "reason": "welfare", "note": "x"},
    )
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()
    assert Notification.objects.count() == notified
    assert not NotificationException.objects.filter(guardianship=a_link).exists()
    assert audit_since(mark) == []
    # Its own school's link is accepted, with the staff member as the recorder.
    r = client.post(
        "/admin/consent/notificationexception/add/",
        {"guardianship": b_link.pk, "reason": "welfare", "note": "Court order"},
    )
    assert r.status_code == 302
    assert NotificationException.objects.get(guardianship=b_link).recorded_by == staff_b


# --- 4. Beat schedules ------------------------------------------------------------------------


def test_school_staff_cannot_switch_off_a_schedule(client, django_user_model, school):
    every = IntervalSchedule.objects.create(every=5, period="minutes")
    task = PeriodicTask.objects.create(
        name="Erasure watchdog (test)",
        task="biometrics.tasks.erasure_watchdog_task",
        interval=every,
    )
    group = Group.objects.get(name="School admin")
    # An earlier version gave the group the schedules; the next migrate takes them away.
    group.permissions.add(Permission.objects.get(codename="change_periodictask"))
    staff_groups_sync()
    assert not group.permissions.filter(content_type__app_label="django_celery_beat").exists()
    assert set(GROUPS) == set(ROLE_GROUPS.values())  # create_staff's roles are these groups
    for name, perms in GROUPS.items():
        assert not [p for p in perms if p.startswith(("django_celery_beat.", "auth."))], name

    client.force_login(staff_user(django_user_model, school, name="staffa"))
    page = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    assert client.get(page).status_code == 403
    r = client.post(page, {"name": task.name, "task": task.task, "interval": every.pk})
    assert r.status_code == 403
    r = client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "disable_tasks", "_selected_action": [task.pk]},
    )
    assert r.status_code == 403
    task.refresh_from_db()
    assert task.enabled


# --- 6. The holder's secret and address ---------------------------------------------------------


class Probe:
    """An HTTP server on 127.0.0.1 that records every request it gets (an internal service)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                probe.paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


def test_the_holder_secret_is_write_only_and_sealed(client, django_user_model, school):
    secret = "holder-secret-value-1"
    client.force_login(staff_user(django_user_model, school, name="staffa"))
    add = reverse("admin:biometrics_holder_add")
    r = client.post(
        add,
        {
            **page_form(client, add),
            "school": school.pk,
            "name": "Gate",
            "base_url": "http://127.0.0.1:9",
            "secret": secret,
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    holder = Holder.objects.get(name="Gate")
    change = reverse("admin:biometrics_holder_change", args=[holder.pk])
    assert secret not in client.get(change).content.decode()
    # Saving the page without typing a secret keeps it; the DPO's read-only page has none.
    r = client.post(change, {**page_form(client, change), "name": "Gate 2"})
    assert r.status_code == 302
    holder.refresh_from_db()
    assert holder.has_secret(secret)
    client.force_login(staff_user(django_user_model, school, group="DPO", name="dpoa"))
    page = client.get(change).content.decode()
    assert secret not in page and "Secret" not in page
    # Stored sealed under the KEK; in no audit row; never readable from the model.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM biometrics_holder WHERE id = %s", [holder.pk])
        row = json.dumps(cursor.fetchone(), default=str)
    assert secret not in row and "gk1:" in row
    assert secret not in json.dumps([e.data for e in AuditEvent.objects.all()])
    with pytest.raises(AttributeError):
        holder.secret  # noqa: B018
    # A changed secret is audited by name only; the same secret again changes nothing.
    mark = last_event()
    holder_update(holder=holder, secret=secret, actor=TEST_ACTOR)
    assert audit_since(mark) == []
    holder_update(holder=holder, secret="holder-secret-value-2", actor=TEST_ACTOR)
    assert [e.data["changes"] for e in audit_since(mark)] == [{"sealed_secret": "changed"}]


def test_the_migration_seals_existing_holder_secrets(transactional_db, school):
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("biometrics", "0002_schedules")])
    old = executor.loader.project_state([("biometrics", "0002_schedules")]).apps
    row = old.get_model("biometrics", "Holder").objects.create(
        school_id=school.pk, name="Old", base_url="http://127.0.0.1:9", secret="plain-old-secret"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    holder = Holder.objects.get(pk=row.pk)
    assert holder.has_secret("plain-old-secret")
    assert holder.client()._secret == "plain-old-secret"
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM biometrics_holder WHERE id = %s", [holder.pk])
        assert "plain-old-secret" not in json.dumps(cursor.fetchone(), default=str)


def test_holder_addresses_are_checked_and_test_connection_makes_no_blind_requests(
    client, django_user_model, school, settings, probe
):
    """The review pointed a holder at an internal URL and pressed "test connection"."""
    internal = holder_create(
        school=school,
        name="Probe",
        base_url=probe.url + "/internal-probe",
        secret="s" * 16,
        actor=TEST_ACTOR,
    )  # allowed while private addresses are (the embedded default)
    settings.HOLDER_ALLOW_PRIVATE_ADDRESSES = False
    client.force_login(staff_user(django_user_model, school, name="staffa"))
    add = reverse("admin:biometrics_holder_add")
    for url, message in [
        (probe.url + "/internal-probe", URL_PRIVATE),
        ("http://169.254.169.254/latest/meta-data", URL_PRIVATE),
        ("http://[::ffff:127.0.0.1]:80/", URL_PRIVATE),
        ("http://localhost:8000/", URL_PRIVATE),
        ("http://user:pw@holder.example/", URL_CREDENTIALS),
        ("ftp://holder.example/", URL_SCHEME),
    ]:
        r = client.post(
            add,
            {
                "school": school.pk,
                "name": "X",
                "base_url": url,
                "secret": "s" * 16,
                "enabled": "on",
            },
        )
        assert r.status_code == 200, url
        assert str(message) in r.content.decode().replace("&#x27;", "'"), url
        with pytest.raises(ValueError, match="holder"):
            holder_create(school=school, name="Y", base_url=url, secret="s" * 16, actor=TEST_ACTOR)
    assert not Holder.objects.filter(name__in=["X", "Y"]).exists()

    r = client.post(
        reverse("admin:biometrics_holder_changelist"),
        {"action": "test_connection", "_selected_action": [internal.pk]},
        follow=True,
    )
    assert "Probe: not called." in r.content.decode()
    # Even a client made without the check connects only where the rule allows.
    with pytest.raises(HolderUnavailable, match="[Rr]efused"):
        internal.client(timeout=2).list_subjects()
    assert probe.paths == []
    settings.HOLDER_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # a school LAN: not the loopback
    with pytest.raises(HolderUnavailable, match="[Rr]efused"):
        internal.client(timeout=2).list_subjects()
    settings.HOLDER_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # named by the operator: answers
    r = client.post(
        reverse("admin:biometrics_holder_changelist"),
        {"action": "test_connection", "_selected_action": [internal.pk]},
        follow=True,
    )
    assert probe.paths == ["/internal-probe/subjects"]


# --- Item 8: onboarding from the command line ---------------------------------------------------


def test_create_school_and_staff_then_the_staff_member_sets_a_password(db, client, capsys):
    call_command("create_school", "--slug", "hill", "--name", "Hill School")
    school = SchoolFactory(slug="hill")  # the one the command made
    assert school.name == "Hill School"
    assert AuditEvent.objects.filter(action="school.created", school_id=school.pk).exists()
    capsys.readouterr()

    call_command("create_staff", "Dana@Hill.Example", "--school", "hill", "--role", "dpo")
    out = capsys.readouterr().out.strip().splitlines()
    link_url = out[-1]
    assert link_url.startswith("http") and "/admin/set-password/" in link_url
    from django.contrib.auth import get_user_model

    dana = get_user_model().objects.get(username="dana@hill.example")
    assert dana.is_staff and not dana.has_usable_password()
    assert list(dana.groups.values_list("name", flat=True)) == ["DPO"]
    assert StaffMembership.objects.get(user=dana).role == "dpo"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"staff.member_added", "staff.membership_added", "staff.password_link_issued"} <= actions

    path = "/" + link_url.split("/", 3)[3]
    form = client.get(path, follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-fresh-pass-phrase-7", "new_password2": "a-fresh-pass-phrase-7"},
    )
    assert done.status_code == 302
    dana.refresh_from_db()
    assert dana.check_password("a-fresh-pass-phrase-7")
    assert AuditEvent.objects.filter(action="staff.password_set").exists()
    client.logout()
    again = client.get(path, follow=True).content.decode()  # one use only
    assert "new_password1" not in again

    # Re-running links the same account in another role; a guardian's address is refused.
    call_command("create_staff", "dana@hill.example", "--school", "hill", "--role", "school_admin")
    assert StaffMembership.objects.get(user=dana).role == "admin"
    assert list(dana.groups.values_list("name", flat=True)) == ["School admin"]
    guardian_get_or_create(email="mum@hill.example", name="Mum")
    with pytest.raises(CommandError, match="belongs to a guardian"):
        call_command("create_staff", "mum@hill.example", "--school", "hill", "--role", "dpo")
    assert not get_user_model().objects.filter(username="mum@hill.example").exists()


def test_a_set_password_link_never_works_for_a_guardians_account(client, parent_a):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(parent_a.user.pk))
    token = default_token_generator.make_token(parent_a.user)
    page = client.get(reverse("admin:guardian-set-password", args=[uid, token]), follow=True)
    assert "new_password1" not in page.content.decode()
    assert is_guardian_account(parent_a.user)


# --- Admin sign-in throttle (django-axes) --------------------------------------------------------


def test_admin_sign_in_is_throttled_per_username_and_address(client, django_user_model, school):
    staff_user(django_user_model, school, name="dana")  # password "pw"
    login = "/admin/login/?next=/admin/"
    tries = [
        client.post(login, {"username": "dana", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
        for _ in range(5)
    ]
    assert [r.status_code for r in tries] == [200, 200, 200, 200, 429]  # the 5th locks
    locked = client.post(login, {"username": "dana", "password": "pw"}, REMOTE_ADDR="10.0.0.9")
    assert locked.status_code == 429
    # The stranger at 10.0.0.9 did not lock Dana out from her own address.
    mine = client.post(login, {"username": "dana", "password": "pw"}, REMOTE_ADDR="10.0.0.1")
    assert mine.status_code == 302 and mine["Location"] == "/admin/"


def test_behind_a_proxy_the_admin_throttle_locks_the_client_not_the_proxy(
    client, django_user_model, school, settings
):
    """Behind one proxy of ours every request comes from its address: the lock must be on the
    client's address it forwards (TRUSTED_PROXY_COUNT), or a stranger locks staff out."""
    settings.TRUSTED_PROXY_COUNT = 1
    staff_user(django_user_model, school, name="dana")
    login = "/admin/login/?next=/admin/"
    proxy = {"REMOTE_ADDR": "10.9.9.9"}
    for _ in range(5):
        client.post(
            login,
            {"username": "dana", "password": "x"},
            HTTP_X_FORWARDED_FOR="203.0.113.7",
            **proxy,
        )
    mine = client.post(
        login, {"username": "dana", "password": "pw"}, HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy
    )
    assert mine.status_code == 302 and mine["Location"] == "/admin/"
