"""Real face photos kept in the repository (`biometrics/demo/`), for the demo and the tests.

- `astronaut.png`: Eileen Collins (NASA, public domain). HOG also "finds" a face on her mission
  patch, so the demo uses a crop around her face.
- `grace_hopper.jpg`: Grace Hopper (U.S. Navy portrait, public domain).

Sources and licences: `biometrics/demo/LICENSE.md`.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image, ImageOps

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def astronaut_path() -> Path:
    return DEMO_DIR / "astronaut.png"


def grace_hopper_path() -> Path:
    return DEMO_DIR / "grace_hopper.jpg"


@cache
def _astronaut() -> Image.Image:
    return Image.open(astronaut_path()).convert("RGB")


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def astronaut_face() -> bytes:
    """A crop of the astronaut portrait with one face (the patch left out)."""
    return _jpeg(_astronaut().crop((90, 0, 350, 310)))


def astronaut_face_mirrored() -> bytes:
    return _jpeg(ImageOps.mirror(_astronaut().crop((90, 0, 350, 310))))


def astronaut_full() -> bytes:
    """The full image: HOG finds two faces (her and the patch) — a "several faces" case."""
    return _jpeg(_astronaut())


def grace_hopper() -> bytes:
    """The original file's bytes, unchanged."""
    return grace_hopper_path().read_bytes()


def grace_hopper_half() -> bytes:
    img = Image.open(grace_hopper_path()).convert("RGB")
    return _jpeg(img.resize((img.width // 2, img.height // 2)))
