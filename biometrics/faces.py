"""The face engine: image checks, detection and 128-d embeddings with face_recognition.

Decisions (SPEC §9, research/face.md):
- EXIF rotation is applied before detection (face_recognition does not do it).
- Large phone photos are decoded at reduced size (JPEG draft mode) and downscaled before HOG
  detection; a 12 MP photo at full size takes seconds.
- The face is *found* on the reduced image but *encoded* at full resolution: the box is mapped
  back, and the landmarks and the 150×150 chip are computed on a full-resolution crop around
  it. Landmarks located on a 4× reduced image are off by a few original pixels, and the chip
  resampled from it is softer; each moved the template by ~0.05–0.1 (bench/faces.py, issue #3).
  Only the crop is turned upright and converted to an array, not the whole 12 MP picture.
- Exactly one face of a minimum size is required.
- The 5-point landmark model (`model="small"`): the 68-point model is not licensed for
  commercial use.
- face_recognition loads its models on import (~1.4 s, ~150 MB); it is imported lazily, once per
  process, so web processes that never touch a face do not pay for it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
from django.conf import settings
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
MODEL_VERSION = "face_recognition 1.3.0 / dlib-bin 20.0.1"
DETECTOR = "hog"
LANDMARKS = "5-point"

# Error codes a capture station sees (HTTP 422), with the words for a person.
ERRORS = {
    "too_large": "The file is larger than the upload limit.",
    "empty_file": "The file is empty.",
    "not_an_image": "The file is not an image.",
    "unsupported_format": "Only JPEG, PNG and WebP photos are accepted.",
    "decompression_bomb": "The image has too many pixels to be a photo.",
    "truncated_image": "The image is damaged or incomplete.",
    "no_face": "No face was found in the photo.",
    "multiple_faces": "More than one face was found; the photo must show only the child.",
    "face_too_small": "The face is too small; take the photo closer.",
}


class ImageRejected(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(ERRORS[code])
        self.code = code
        self.detail = ERRORS[code]


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed the checks: its upright luminance, reduced for detection, and
    what it takes to cut a full-resolution colour crop out of it."""

    gray: np.ndarray  # uint8 H×W, upright, reduced so the longest side ≤ FACE_DETECT_MAX_SIDE
    scale: float  # reduced / original
    width: int  # original, after EXIF rotation
    height: int
    content_type: str
    orientation: int = 1  # EXIF orientation of the stored pixels
    data: bytes = b""  # the upload: a JPEG is decoded again in colour at full resolution
    full: Image.Image | None = None  # the full-resolution decoded image (PNG, WebP)


@cache
def _engine():
    import face_recognition  # noqa: PLC0415 - heavy import, once per process

    # face_recognition sets Pillow's LOAD_TRUNCATED_IMAGES globally on import, which would let
    # a damaged upload through as a half-grey picture. Damaged photos are refused here.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return face_recognition


def warm_up() -> None:
    """Load the models now (a worker calls this at start, not on its first task)."""
    _engine()


def open_image(data: bytes) -> CheckedImage:
    """Check and decode an upload; raise ImageRejected with a specific code on any problem."""
    if not data:
        raise ImageRejected("empty_file")
    if len(data) > settings.FACE_MAX_UPLOAD_BYTES:
        raise ImageRejected("too_large")
    max_side = settings.FACE_DETECT_MAX_SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise ImageRejected("unsupported_format")
            width, height = img.size
            if width * height > settings.FACE_MAX_PIXELS or width <= 0 or height <= 0:
                raise ImageRejected("decompression_bomb")
            content_type = ALLOWED_FORMATS[img.format]
            if img.format == "JPEG":
                # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding, and give the
                # luminance only: far cheaper than decoding 12 MP of colour and resizing
                # afterwards. The colour pixels are decoded later, at full resolution, for
                # the crop around the face only.
                img.draft("L", (max_side, max_side))
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not_an_image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("truncated_image") from exc

    # EXIF orientations 5–8 turn the picture a quarter: width and height swap.
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in range(1, 9):
        orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    full = None if content_type == "image/jpeg" else img
    # HOG detection on the luminance: a third faster than on colour, the same faces (the
    # detector takes the strongest of the three channels' gradients; they rarely differ).
    img = ImageOps.exif_transpose(img.convert("L"))
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    scale = img.size[0] / width
    return CheckedImage(
        np.asarray(img), scale, width, height, content_type, orientation, data, full
    )


def image_dimensions(data: bytes) -> tuple[int, int]:
    checked = open_image(data)
    return checked.width, checked.height


def find_single_face(image: CheckedImage) -> tuple[int, int, int, int]:
    """The one face's box (top, right, bottom, left) in the reduced image's coordinates."""
    fr = _engine()
    # One upsampling pass (face_recognition's default) finds faces down to ~40 px of the
    # reduced image. The box is only a starting point: landmarks and template are computed
    # at full resolution (embed).
    boxes = fr.face_locations(image.gray, number_of_times_to_upsample=1, model=DETECTOR)
    if not boxes:
        raise ImageRejected("no_face")
    if len(boxes) > 1:
        raise ImageRejected("multiple_faces")
    top, right, bottom, left = boxes[0]
    side_in_original = min(bottom - top, right - left) / image.scale
    if side_in_original < settings.FACE_MIN_SIZE:
        raise ImageRejected("face_too_small")
    return boxes[0]


# Transposes that ImageOps.exif_transpose applies for each EXIF orientation.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def stored_region(
    region: tuple[int, int, int, int], orientation: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """An upright (left, top, right, bottom) region of a width×height upright picture, in the
    coordinates of the pixels as stored (before the EXIF orientation is applied)."""
    left, top, right, bottom = region
    w, h = width, height

    def point(x: int, y: int) -> tuple[int, int]:
        return {
            1: (x, y),
            2: (w - x, y),
            3: (w - x, h - y),
            4: (x, h - y),
            5: (y, x),
            6: (y, w - x),
            7: (h - y, w - x),
            8: (h - y, x),
        }[orientation]

    (x1, y1), (x2, y2) = point(left, top), point(right, bottom)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def upright_crop(image: CheckedImage, region: tuple[int, int, int, int]) -> np.ndarray:
    """The full-resolution pixels of an upright region, as uint8 RGB: only the region is cut
    from the stored pixels, turned upright and converted."""
    full = image.full
    if full is None:
        try:
            full = Image.open(io.BytesIO(image.data))
            full.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected("truncated_image") from exc
    crop = full.crop(stored_region(region, image.orientation, image.width, image.height))
    if image.orientation in _TRANSPOSE:
        crop = crop.transpose(_TRANSPOSE[image.orientation])
    return np.asarray(crop if crop.mode == "RGB" else crop.convert("RGB"))


# Around the face box, the full-resolution crop keeps this fraction of the box's side on
# every side, so that the landmarks and the aligned chip (25 % padding) stay inside it: on
# upright faces the template is bit-identical to one computed on the whole picture from 0.3
# on; 0.5 leaves room for a tilted head (the chip turns with the eyes).
CROP_MARGIN = 0.5


def embed(image: CheckedImage, box: tuple[int, int, int, int]) -> np.ndarray:
    """The template of the face in `box` (reduced coordinates), computed at full resolution."""
    fr = _engine()
    # The box in original upright pixels, kept inside the picture as face_locations does.
    top, right, bottom, left = (round(v / image.scale) for v in box)
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, image.height), min(right, image.width)
    margin = round(CROP_MARGIN * max(bottom - top, right - left))
    x0, y0 = max(left - margin, 0), max(top - margin, 0)
    x1, y1 = min(right + margin, image.width), min(bottom + margin, image.height)
    crop = upright_crop(image, (x0, y0, x1, y1))
    crop_box = (top - y0, right - x0, bottom - y0, left - x0)
    (encoding,) = fr.face_encodings(crop, [crop_box], num_jitters=1, model="small")
    return np.asarray(encoding, dtype=np.float64)


def embedding_from_photo(data: bytes) -> np.ndarray:
    """Check, detect exactly one face, and embed it: the whole enrolment pipeline."""
    image = open_image(data)
    return embed(image, find_single_face(image))
