"""The face engine on real photos: checks, EXIF rotation, one face, the 5-point model."""

import io

import numpy as np
import pytest
from PIL import Image

from biometrics import demo_photos, faces


def jpeg(img: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", **kwargs)
    return out.getvalue()


def test_embedding_is_128_numbers_close_to_the_reference_pipeline():
    ours = faces.embedding_from_photo(demo_photos.grace_hopper())
    import face_recognition  # after faces: it must not loosen Pillow's checks for us

    img = face_recognition.load_image_file(demo_photos.grace_hopper_path())
    reference = face_recognition.face_encodings(img, model="small")[0]
    assert ours.shape == (128,)
    assert np.linalg.norm(ours - reference) < 0.06


def test_same_person_is_close_and_different_people_are_far():
    grace = faces.embedding_from_photo(demo_photos.grace_hopper())
    grace_small = faces.embedding_from_photo(demo_photos.grace_hopper_half())
    eileen = faces.embedding_from_photo(demo_photos.astronaut_face())
    assert np.linalg.norm(grace - grace_small) < 0.6
    assert np.linalg.norm(grace - eileen) > 0.6


def test_exif_rotation_is_applied_before_detection():
    upright = Image.open(io.BytesIO(demo_photos.grace_hopper()))
    # Store the pixels turned a quarter, with EXIF orientation 6 saying "turn back to view".
    turned = upright.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg(turned, exif=exif.tobytes(), quality=95)
    checked = faces.open_image(data)
    assert (checked.width, checked.height) == (512, 600)
    assert (
        np.linalg.norm(
            faces.embedding_from_photo(data)
            - faces.embedding_from_photo(demo_photos.grace_hopper())
        )
        < 0.3
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"this is not an image at all", "not_an_image"),
        (demo_photos.grace_hopper()[:20000], "truncated_image"),
        (jpeg(Image.new("RGB", (400, 400), "white")), "no_face"),
        (demo_photos.astronaut_full(), "multiple_faces"),
    ],
    ids=["empty", "text", "truncated-jpeg", "blank", "two-faces"],
)
def test_bad_images_are_refused_with_their_own_code(data, code):
    faces.warm_up()  # face_recognition loaded, as in a worker
    with pytest.raises(faces.ImageRejected) as caught:
        faces.embedding_from_photo(data)
    assert caught.value.code == code


def test_tiny_face_is_refused(settings):
    tiny = Image.open(io.BytesIO(demo_photos.grace_hopper())).resize((120, 140))
    canvas = Image.new("RGB", (1200, 1400), "gray")
    canvas.paste(tiny, (500, 500))
    with pytest.raises(faces.ImageRejected) as caught:
        faces.embedding_from_photo(jpeg(canvas))
    assert caught.value.code in {"face_too_small", "no_face"}


def test_decompression_bomb_is_refused_before_decoding(settings):
    settings.FACE_MAX_PIXELS = 10_000_000
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # 400 MP, a few KB compressed
    assert len(out.getvalue()) < 200_000
    with pytest.raises(faces.ImageRejected) as caught:
        faces.open_image(out.getvalue())
    assert caught.value.code == "decompression_bomb"


def test_oversized_upload_is_refused(settings):
    settings.FACE_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(faces.ImageRejected) as caught:
        faces.open_image(demo_photos.grace_hopper())
    assert caught.value.code == "too_large"
