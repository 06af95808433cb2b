"""The face engine: image checks, detection and 128-d embeddings with face_recognition.

Decisions (SPEC §9, research/face.md):
- EXIF rotation is applied before detection (face_recognition does not do it).
- Large phone photos are decoded at reduced size (JPEG draft mode) and downscaled before HOG
  detection; a 12 MP photo at full size takes seconds.
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
    """A decoded, upright image, possibly reduced for detection."""

    rgb: np.ndarray  # uint8 H×W×3, reduced so the longest side ≤ FACE_DETECT_MAX_SIDE
    scale: float  # reduced / original
    width: int  # original, after EXIF rotation
    height: int
    content_type: str


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
                # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding: far cheaper
                # than decoding 12 MP and resizing afterwards.
                img.draft("RGB", (max_side, max_side))
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
    if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
        width, height = height, width
    img = ImageOps.exif_transpose(img).convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    scale = img.size[0] / width
    return CheckedImage(np.asarray(img), scale, width, height, content_type)


def image_dimensions(data: bytes) -> tuple[int, int]:
    checked = open_image(data)
    return checked.width, checked.height


def find_single_face(image: CheckedImage) -> tuple[int, int, int, int]:
    """The one face's box (top, right, bottom, left) in the reduced image's coordinates."""
    fr = _engine()
    # One upsampling pass finds faces down to ~40 px and gives the same box (hence the same
    # landmarks and embedding) as face_recognition's defaults; the image is already reduced.
    boxes = fr.face_locations(image.rgb, number_of_times_to_upsample=1, model=DETECTOR)
    if not boxes:
        raise ImageRejected("no_face")
    if len(boxes) > 1:
        raise ImageRejected("multiple_faces")
    top, right, bottom, left = boxes[0]
    side_in_original = min(bottom - top, right - left) / image.scale
    if side_in_original < settings.FACE_MIN_SIZE:
        raise ImageRejected("face_too_small")
    return boxes[0]


def embed(image: CheckedImage, box: tuple[int, int, int, int]) -> np.ndarray:
    fr = _engine()
    (encoding,) = fr.face_encodings(image.rgb, [box], num_jitters=1, model="small")
    return np.asarray(encoding, dtype=np.float64)


def embedding_from_photo(data: bytes) -> np.ndarray:
    """Check, detect exactly one face, and embed it: the whole enrolment pipeline."""
    image = open_image(data)
    return embed(image, find_single_face(image))
