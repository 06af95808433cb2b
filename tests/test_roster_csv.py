"""Roster values are bounded line by line (consent/roster_csv.py, docs/bad-input.md): a field
over the CSV reader's 128 KiB limit, a control character or a date of birth in the future is an
error on its line, the other lines import; a NUL character refuses the file; the staff API's
student and guardian fields have the same bounds."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from consent.models import RosterImport, StaffMembership, Student
from consent.roster import roster_job_run
from portal.auth import api_key_create

HEADER = "external_id,name,date_of_birth,class_name\n"
TOMORROW = (timezone.localdate() + timedelta(days=1)).isoformat()
MIXED = (
    HEADER
    + "G1,Good One,2015-04-01,Year 5\n"  # line 2
    + "B1,"
    + "n" * 140 * 1024
    + "\n"  # line 3: over the CSV reader's field limit
    + f"B2,Born Tomorrow,{TOMORROW}\n"  # line 4
    + "B3,Bell\x07Name\n"  # line 5
    + "G2,Good Two\n"  # line 6
)
ERRORS = {
    3: "the line cannot be read as CSV",
    4: "is in the future",
    5: "holds a control character",
}


def assert_only_good_lines_stored(school):
    assert set(Student.objects.filter(school=school).values_list("external_id", flat=True)) == {
        "G1",
        "G2",
    }


def test_command_reports_each_bad_line_and_imports_the_good_ones(school, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_text(MIXED)
    call_command("import_roster", str(path), "--school", school.slug)
    out = capsys.readouterr().out
    assert "2 students created" in out and "3 errors" in out
    for line, words in ERRORS.items():
        assert any(f"line {line}:" in row and words in row for row in out.splitlines()), out
    assert_only_good_lines_stored(school)


def test_command_refuses_a_file_with_nul_characters(school, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + "G1,Good One\nB1,Nul\x00Name\n")
    with pytest.raises(CommandError, match="line 3 holds a NUL character"):
        call_command("import_roster", str(path), "--school", school.slug)
    assert not Student.objects.exists()


@pytest.fixture
def admin_client(client, django_user_model, school):
    user = django_user_model.objects.create_user("admin_a", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="School admin"))
    StaffMembership.objects.create(user=user, school=school)
    client.force_login(user)
    return client


def upload(client, school, text: str):
    csv = SimpleUploadedFile("roster.csv", text.encode(), "text/csv")
    return client.post("/admin/roster/", {"school": school.pk, "csv": csv})


def test_admin_import_reports_each_bad_line_and_imports_the_good_ones(admin_client, school):
    r = upload(admin_client, school, MIXED)
    assert r.status_code == 302
    job = roster_job_run(job_id=RosterImport.objects.get().pk)
    assert (job.status, job.students_created) == ("done", 2)
    assert {line for line, _ in job.errors} == set(ERRORS)
    for line, message in job.errors:
        assert ERRORS[line] in message
    assert_only_good_lines_stored(school)
    page = admin_client.get(f"/admin/roster/{job.pk}/").content.decode()
    assert "is in the future" in page


def test_admin_import_refuses_a_file_with_nul_characters(admin_client, school):
    r = upload(admin_client, school, HEADER + "B1,Nul\x00Name\n")
    assert r.status_code == 200
    assert "line 2 holds a NUL character" in r.content.decode()
    assert not RosterImport.objects.exists()


@pytest.fixture
def staff(school):
    _, key = api_key_create(school=school, scopes=["roster"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"external_id": "S-1", "name": "Kid", "date_of_birth": TOMORROW},
            "date_of_birth",
            "future",
        ),
        ({"external_id": "S-1", "name": "Bell\u0007Kid"}, "name", "control character"),
        (
            {"external_id": "S-1", "name": "Kid", "class_name": "Tab\tClass"},
            "class_name",
            "control",
        ),
    ],
    ids=["dob-tomorrow", "name-bell", "class-tab"],
)
def test_staff_api_refuses_what_a_roster_line_may_not_hold(staff, school, body, field, words):
    r = staff.post("/api/v1/staff/students/", body, format="json")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid"
    assert words in r.json()["detail"][field][0]
    assert not Student.objects.exists()
