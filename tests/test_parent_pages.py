"""The parent's web pages: what is shown, and that nobody reaches another family's child."""

import pytest

from biometrics import demo_photos
from biometrics.erasure import erasure_open
from biometrics.models import FaceTemplate, Photo
from biometrics.services import photo_enrol
from consent.models import AuditEvent
from portal.exports import export_request

from .factories import TEST_ACTOR


def child_pages(child):
    photo = Photo.objects.filter(student=child).first()
    template = FaceTemplate.objects.filter(student=child).first()
    return [
        f"/children/{child.pk}/",
        f"/children/{child.pk}/?show={template.pk}",
        f"/children/{child.pk}/photos/{photo.pk}/thumbnail/",
    ]


def test_child_page_shows_every_kind_of_item(web_a, enrolled_child_a):
    page = web_a.get(f"/children/{enrolled_child_a.pk}/").content.decode()
    photo = Photo.objects.get(student=enrolled_child_a)
    assert f"/children/{enrolled_child_a.pk}/photos/{photo.pk}/thumbnail/" in page
    assert "dlib_face_recognition_resnet_model_v1" in page
    assert "Show the 128 numbers" in page
    assert "Guardian portal database" in page and "Photo storage" in page
    assert "Destroyed by" in page
    assert "Gate Access" in page and "A card instead." in page


def test_child_page_says_how_long_the_school_keeps_a_download(web_a, child_a):
    page = web_a.get(f"/children/{child_a.pk}/").content.decode()
    assert "kept for 72 hours." in page  # the default
    child_a.school.export_expiry_hours = 24
    child_a.school.save(update_fields=["export_expiry_hours"])
    page = web_a.get(f"/children/{child_a.pk}/").content.decode()
    assert "kept for 24 hours." in page


def test_pages_in_progress_reload_themselves_from_the_head(web_a, child_a, parent_a):
    export = export_request(student=child_a, guardian=parent_a)
    erasure = erasure_open(student=child_a, trigger="parent_request", actor=TEST_ACTOR)
    for url in (f"/exports/{export.pk}/", f"/erasures/{erasure.pk}/"):
        head, body = web_a.get(url).content.decode().split("</head>")
        assert '<meta http-equiv="refresh" content="3">' in head, url
        assert "http-equiv" not in body, url


def test_show_toggle_reveals_128_numbers_and_logs_the_look(web_a, enrolled_child_a):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    page = web_a.get(f"/children/{enrolled_child_a.pk}/?show={template.pk}").content.decode()
    numbers = page.split('<ol class="numbers">')[1].split("</ol>")[0]
    assert numbers.count("<li>") == 128
    assert (
        AuditEvent.objects.filter(
            action="biometrics.template_viewed", subject=str(enrolled_child_a.subject_id)
        ).count()
        == 1
    )


def test_thumbnail_is_a_real_image_and_logged(web_a, enrolled_child_a):
    photo = Photo.objects.get(student=enrolled_child_a)
    r = web_a.get(f"/children/{enrolled_child_a.pk}/photos/{photo.pk}/thumbnail/")
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8"
    assert "no-store" in r["Cache-Control"]
    page = web_a.get(f"/children/{enrolled_child_a.pk}/").content.decode()
    assert "You" in page.split('id="access"')[1]


def test_children_page_lists_only_own_children(web_a, child_a, child_b):
    page = web_a.get("/children/").content.decode()
    assert "Child A" in page and "Child B" not in page


def test_wrong_parent_gets_404_on_every_child_page(client, parent_b, child_b, enrolled_child_a):
    client.force_login(parent_b.user)
    for url in child_pages(enrolled_child_a):
        r = client.get(url)
        assert r.status_code == 404, url
        assert b"Child A" not in r.content


def test_no_sign_in_redirects_to_sign_in(client, enrolled_child_a):
    for url in ["/children/", *child_pages(enrolled_child_a)]:
        r = client.get(url)
        assert r.status_code == 302, url
        assert r["Location"].startswith("/sign-in/")


@pytest.mark.parametrize("show", ["nonsense", "00000000-0000-0000-0000-000000000000"])
def test_show_with_a_bad_template_id_is_404(web_a, enrolled_child_a, show):
    assert web_a.get(f"/children/{enrolled_child_a.pk}/?show={show}").status_code == 404


def test_pages_are_not_cached(web_a, child_a):
    r = web_a.get(f"/children/{child_a.pk}/")
    assert "no-store" in r["Cache-Control"]


def test_child_page_speaks_the_parents_language_in_words_and_dates(web_a, enrolled_child_a):
    """Decisions and statuses in words, never raw codes; dates as the language writes them."""
    english = web_a.get(f"/children/{enrolled_child_a.pk}/").content.decode()
    assert ": Granted" in english and ": grant" not in english
    year = enrolled_child_a.decisions.get().at.year
    assert "Destroyed by <strong>" in english
    web_a.cookies["django_language"] = "zh-hans"
    chinese = web_a.get(f"/children/{enrolled_child_a.pk}/").content.decode()
    assert ": grant" not in chinese and ": Granted" not in chinese
    assert "最迟于 <strong>" in chinese
    assert f"{year}年" in chinese  # e.g. 2026年11月29日, not "29 11月 2026"


def test_a_photo_not_yet_checked_has_no_thumbnail_and_a_damaged_one_is_no_500(web_a, child_a):
    """Enrolment checks only the header in the web process; until the faces worker has decoded
    the photo, the page says it is being checked and its thumbnail is not decoded here."""
    damaged = demo_photos.grace_hopper()[:4000]  # a sound JPEG header, then nothing
    photo = photo_enrol(student=child_a, data=damaged, actor=TEST_ACTOR)
    assert photo.status == "pending"
    page = web_a.get(f"/children/{child_a.pk}/").content.decode()
    assert f"/photos/{photo.pk}/thumbnail/" not in page
    assert "Being checked" in page
    assert web_a.get(f"/children/{child_a.pk}/photos/{photo.pk}/thumbnail/").status_code == 404
