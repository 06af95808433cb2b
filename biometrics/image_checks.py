"""Checks of an uploaded photo or frame from its header alone: what a web process can refuse
at once, before a single pixel is decoded (docs/bad-input.md).

Refused: an empty file, one over the upload limit, one that is not an image, a format other
than JPEG, PNG or WebP, an image whose header declares more pixels than the limit (a
decompression bomb: a 140 KB PNG can declare 49 MP), or one too small to hold a face of the
minimum size. Decoding, detection and templates are the face engine's (`biometrics.faces`),
in a faces worker; its refusals use the same codes (`ERRORS`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, PngImagePlugin

# Compressed text chunks in a PNG header are inflated when the file is opened (before any
# pixel): Pillow allows 64 MB of them by default; a photo needs none.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# Error codes a capture station sees (HTTP 422), with the words for a person.
ERRORS = {
    "too_large": "The file is larger than the upload limit.",
    "empty_file": "The file is empty.",
    "not_an_image": "The file is not an image.",
    "unsupported_format": "Only JPEG, PNG and WebP photos are accepted.",
    "decompression_bomb": "The image has too many pixels to be a photo.",
    "frame_too_large": (
        "Identification takes a camera frame, not a full photo: send fewer pixels, "
        "or the embedding computed on the camera."
    ),
    "truncated_image": "The image is damaged or incomplete.",
    "no_face": "No face was found in the photo.",
    "multiple_faces": "More than one face was found; the photo must show only the child.",
    "face_too_small": "The face is too small; take the photo closer.",
    "unreadable_image": "The image could not be read.",
}


class ImageRejected(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(ERRORS[code])
        self.code = code
        self.detail = ERRORS[code]


def max_pixels(image_format: str) -> int:
    """A JPEG is decoded reduced (draft mode), so it may have more pixels than a PNG or WebP,
    which is decoded whole: a real PNG photo over ~10 MP is over the upload limit anyway."""
    if image_format == "JPEG":
        return settings.FACE_MAX_PIXELS
    return settings.FACE_MAX_PIXELS_PNG_WEBP


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding a single pixel."""

    format: str
    content_type: str
    width: int  # as stored (a JPEG's EXIF may turn it upright later: the worker records that)
    height: int


def image_header(data: bytes, *, pixels_limit: int | None = None) -> ImageHeader:
    """Check an upload from its header alone: what a web process can refuse at once.

    Refused: an empty file, one over the upload limit, one that is not an image, a format
    other than JPEG, PNG or WebP, and an image whose header declares more pixels than the
    limit (a decompression bomb: a 140 KB PNG can declare 49 MP). Nothing is decoded, so memory
    stays flat whatever the header declares (Pillow only reads the header on open).
    Whether the image is complete and shows one big-enough face is for the faces worker.
    """
    return open_header(data, pixels_limit=pixels_limit)[1]


def open_header(data: bytes, *, pixels_limit: int | None = None):
    if not data:
        raise ImageRejected("empty_file")
    if len(data) > settings.FACE_MAX_UPLOAD_BYTES:
        raise ImageRejected("too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb") from exc
    except Exception as exc:  # a hostile header breaks Pillow's plugins in many ways
        raise ImageRejected("not_an_image") from exc
    if img.format not in ALLOWED_FORMATS:
        raise ImageRejected("unsupported_format")
    width, height = img.size
    if width <= 0 or height <= 0 or width * height > max_pixels(img.format):
        raise ImageRejected("decompression_bomb")
    if pixels_limit is not None and width * height > pixels_limit:
        raise ImageRejected("frame_too_large")
    if min(width, height) < settings.FACE_MIN_SIZE:  # no face of the minimum size fits
        raise ImageRejected("face_too_small")
    return img, ImageHeader(img.format, ALLOWED_FORMATS[img.format], width, height)
