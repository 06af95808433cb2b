from django.core.management import call_command

from biometrics import demo_photos
from biometrics.models import FaceTemplate, Photo

from .factories import StudentFactory


def test_enrol_photos_enrols_consented_children_and_reports_the_rest(
    tmp_path, school, child_a, capsys
):
    unconsented = StudentFactory(school=school, external_id="NO-CONSENT")
    (tmp_path / f"{child_a.external_id}.jpg").write_bytes(demo_photos.grace_hopper())
    (tmp_path / "NO-CONSENT.jpg").write_bytes(demo_photos.grace_hopper())
    (tmp_path / "UNKNOWN.jpg").write_bytes(demo_photos.grace_hopper())
    (tmp_path / "notes.txt").write_text("ignored")
    call_command("enrol_photos", str(tmp_path), "--school", school.slug, "--now")
    out, err = capsys.readouterr()
    assert "enrolled: 1" in out
    assert "no_active_consent: 1" in out
    assert "unknown_student: 1" in out
    assert "3/3" in err  # the progress bar reached the end
    assert FaceTemplate.objects.filter(student=child_a).count() == 1
    assert not Photo.objects.filter(student=unconsented).exists()
