"""The face engine: decoding, detection and 128-d embeddings with face_recognition.

Decisions (docs/architecture.md, "Face engine and identification"):
- Two stages: `biometrics.image_checks.image_header` reads only the header (the web process:
  empty, too large, not an image, wrong format, too many pixels are refused at once, before
  anything is decoded); `open_image` here decodes, in a faces worker (or for a small
  identification frame). See docs/bad-input.md.
- EXIF rotation is applied before detection (face_recognition does not do it).
- Large phone photos are decoded at reduced size (JPEG draft mode) and HOG detection runs on a
  reduced picture; a 12 MP photo at full size takes seconds.
- The template is face_recognition's own for the upright photo (issue #3): the dlib template
  moves by up to 0.12 when its box moves by 2 px, so finding "about the same" box is not
  enough. The reduced picture is made to be exactly one level of the image pyramid dlib's
  detector builds for the full-size photo (same size, same geometry), so the detector finds the
  face at the same pyramid positions, and the box is mapped back with dlib's own pyramid
  arithmetic: on the benchmark's photos it is the same box to the pixel. Landmarks and the
  150×150 chip are computed on a full-resolution crop around that box. Only the crop is turned
  upright and converted to an array, not the whole 12 MP picture.
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
from PIL import Image, ImageFile, ImageOps

from .image_checks import ImageRejected, open_header

MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
MODEL_VERSION = "face_recognition 1.3.0 / dlib-bin 20.0.1"
DETECTOR = "hog"
LANDMARKS = "5-point"


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed the checks, decoded (reduced, for a JPEG) and turned upright."""

    source: Image.Image  # RGB, upright; a JPEG's is reduced by `factor` while decoding
    factor: tuple[float, float]  # original pixels per source pixel, across and down
    offset: tuple[float, float]  # original coordinate of the source's pixel 0 (its centre)
    pyramid: tuple[tuple[int, int], ...]  # sizes of dlib's HOG pyramid for the original
    level: int  # the pyramid level the detector runs on (longest side ≤ 2 × DETECT_MAX_SIDE)
    width: int  # original, after EXIF rotation
    height: int
    content_type: str
    orientation: int = 1  # EXIF orientation of the stored pixels
    data: bytes = b""  # the upload: a JPEG is decoded again at full resolution for the crop
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
    """Check and decode an upload (in a faces worker, or for a small identification frame);
    raise ImageRejected with a specific code on any problem."""
    img, header = open_header(data)
    width, height = header.width, header.height
    content_type = header.content_type
    max_side = settings.FACE_DETECT_MAX_SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pyramid = _pyramid_sizes(*((height, width) if _turned(img) else (width, height)))
            level = next(
                (i for i, size in enumerate(pyramid) if max(size) <= 2 * max_side),
                len(pyramid) - 1,
            )
            if img.format == "JPEG":
                # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding (never below
                # the detection level's size): far cheaper than decoding 12 MP and resizing
                # afterwards. The full resolution is decoded later, for the face's crop only.
                wanted = pyramid[level][::-1] if _turned(img) else pyramid[level]
                img.draft("RGB", wanted)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("truncated_image") from exc

    # EXIF orientations 5–8 turn the picture a quarter: width and height swap.
    orientation = _orientation(img)
    full = None if content_type == "image/jpeg" else img
    source = ImageOps.exif_transpose(img.convert("RGB"))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    # Pixel i of a source reduced f times covers original pixels f·i … f·i+f-1 (centre
    # f·i + (f-1)/2), counted from the side the stored pixels start on: turned upright, an axis
    # that was flipped counts from the other side.
    flipped_x = orientation in (2, 3, 6, 7)
    flipped_y = orientation in (3, 4, 7, 8)
    factor, offset = [], []
    for size, reduced, flipped in (
        (width, source.width, flipped_x),
        (height, source.height, flipped_y),
    ):
        f = size / reduced
        f = round(f) if abs(f - round(f)) < 0.01 else f
        o = (f - 1) / 2
        if flipped:
            o = (size - 1) - f * (reduced - 1) - o
        factor.append(f)
        offset.append(o)
    return CheckedImage(
        source,
        (factor[0], factor[1]),
        (offset[0], offset[1]),
        tuple(pyramid),
        level,
        width,
        height,
        content_type,
        orientation,
        data,
        full,
    )


def _orientation(img: Image.Image) -> int:
    orientation = img.getexif().get(0x0112, 1)
    return orientation if orientation in range(1, 9) else 1


def _turned(img: Image.Image) -> bool:
    return _orientation(img) in (5, 6, 7, 8)


@cache
def _dlib():
    import dlib  # noqa: PLC0415 - loaded with face_recognition anyway

    return dlib


def _pyramid_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """The sizes of the images dlib's HOG detector scans for a width×height picture with one
    upsampling (face_recognition's default): the picture doubled (pyramid_up), then each
    level 5/6 of the one before (pyramid_down<6>, integer sizes), down past the 80 px window."""
    dlib = _dlib()
    up = dlib.pyramid_down(2).rect_up(dlib.rectangle(0, 0, width - 1, height - 1))
    sizes = [(up.right() + 1, up.bottom() + 1)]
    while min(sizes[-1]) * 5 // 6 >= 40:
        sizes.append((sizes[-1][0] * 5 // 6, sizes[-1][1] * 5 // 6))
    return sizes


def _level_pixels(
    image: CheckedImage, level: int, region: tuple[int, int, int, int]
) -> Image.Image:
    """Pixels left…right-1 × top…bottom-1 of pyramid level `level`, resampled from the source.

    dlib resizes corner to corner, so level pixel x sits at original x · (W-1)/(w-1)."""
    left, top, right, bottom = region
    level_w, level_h = image.pyramid[level]
    (fx, fy), (ox, oy) = image.factor, image.offset
    step_x = (image.width - 1) / (level_w - 1) / fx  # source pixels per level pixel
    step_y = (image.height - 1) / (level_h - 1) / fy
    x0 = step_x * left - ox / fx  # source coordinate of the region's first pixel
    y0 = step_y * top - oy / fy
    # Cut the source with a margin (outside the picture Pillow pads with black), then resize
    # with Pillow's convention: output pixel i samples input x = box0 + (i + 0.5)·step - 0.5.
    mx, my = int(step_x) + 3, int(step_y) + 3
    cx, cy = int(np.floor(x0)) - mx, int(np.floor(y0)) - my
    cw = int(np.ceil(step_x * (right - left))) + 2 * mx + 1
    ch = int(np.ceil(step_y * (bottom - top))) + 2 * my + 1
    piece = image.source.crop((cx, cy, cx + cw, cy + ch))
    bx, by = x0 - cx + 0.5 - 0.5 * step_x, y0 - cy + 0.5 - 0.5 * step_y
    box = (bx, by, bx + step_x * (right - left), by + step_y * (bottom - top))
    size = (right - left, bottom - top)
    return piece.resize(size, Image.Resampling.BILINEAR, box=box)


WINDOW = 73  # side of the detector's boxes at the level they are found on (dlib.rectangle)


def _round(dlib, r):
    """dlib's drectangle → rectangle conversion (nearest pixel)."""
    return dlib.rectangle(
        *(int(np.floor(v + 0.5)) for v in (r.left(), r.top(), r.right(), r.bottom()))
    )


def _original_box(image: CheckedImage, level: int, rect) -> tuple[int, int, int, int]:
    """A box found at pyramid `level`, mapped as face_recognition maps it: up the pyramid to
    the doubled picture (rounded), down by the doubling (rounded), trimmed, as css."""
    dlib = _dlib()
    doubled = _round(dlib, dlib.pyramid_down(6).rect_up(dlib.drectangle(rect), level))
    r = _round(dlib, dlib.pyramid_down(2).rect_down(dlib.drectangle(doubled)))
    return (
        max(r.top(), 0),
        min(r.right(), image.width),
        min(r.bottom(), image.height),
        max(r.left(), 0),
    )


def _detector_box(image: CheckedImage, found) -> tuple[int, int, int, int]:
    """The box dlib's detector reports for the full-size photo, for a face it found scanning
    image.level (found: in that level's coordinates, as dlib returns it).

    dlib found it on a smaller level of its own pyramid (level + j) and mapped it up j levels,
    rounding. That level's integer rectangle is recovered (the rounding is undone exactly: the
    error shrinks by 5/6 per level), then mapped all the way up as the full-size scan maps it."""
    dlib = _dlib()
    pyr = dlib.pyramid_down(6)
    found_d = dlib.drectangle(found)
    for j in range(len(image.pyramid) - image.level):
        there = pyr.rect_down(found_d, j)
        rect = _round(dlib, there)
        if rect.width() > WINDOW + 1:
            continue
        back = pyr.rect_up(dlib.drectangle(rect), j)
        if all(
            abs(a - b) <= 0.5 + 1e-6
            for a, b in zip(
                (back.left(), back.top(), back.right(), back.bottom()),
                (found.left(), found.top(), found.right(), found.bottom()),
                strict=True,
            )
        ):
            return _original_box(image, image.level + j, rect)
        break
    return _original_box(image, image.level, found)


def find_single_face(image: CheckedImage) -> tuple[int, int, int, int]:
    """The one face's box (top, right, bottom, left) in the original upright picture."""
    detector = _engine().api.face_detector
    # No upsampling: the level is already at the right scale. Faces from the detector's 80 px
    # window at this level are found (~170 px of a 4000×3000 photo; ~160 px with the former
    # 1024 px reduction and one upsampling). In colour, as face_recognition scans: on luminance it
    # is a third faster but lands on a neighbouring window now and then.
    level_w, level_h = image.pyramid[image.level]
    level = _level_pixels(image, image.level, (0, 0, level_w, level_h))
    found = detector(np.asarray(level), 0)
    if not found:
        raise ImageRejected("no_face")
    if len(found) > 1:
        raise ImageRejected("multiple_faces")
    top, right, bottom, left = box = _detector_box(image, found[0])
    if min(bottom - top, right - left) < settings.FACE_MIN_SIZE:
        raise ImageRejected("face_too_small")
    return box


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
    """The template of the face in `box` (original upright pixels), at full resolution."""
    fr = _engine()
    top, right, bottom, left = box
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
