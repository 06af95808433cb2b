from django.core.files.uploadedfile import SimpleUploadedFile

from biometrics import demo_photos
from biometrics.models import Photo

from .factories import StudentFactory


def test_admin_enrolment_goes_through_the_consent_check(admin_client, school, child_a, media_dir):
    ok = admin_client.post(
        f"/admin/consent/student/{child_a.pk}/enrol/",
        {"image": SimpleUploadedFile("p.jpg", demo_photos.grace_hopper(), "image/jpeg")},
        follow=True,
    )
    assert ok.status_code == 200
    assert Photo.objects.filter(student=child_a, source="admin").count() == 1

    unconsented = StudentFactory(school=school)
    refused = admin_client.post(
        f"/admin/consent/student/{unconsented.pk}/enrol/",
        {"image": SimpleUploadedFile("p.jpg", demo_photos.grace_hopper(), "image/jpeg")},
    )
    assert refused.status_code == 200
    assert "No purpose is active for this child" in refused.content.decode()
    assert not Photo.objects.filter(student=unconsented).exists()
