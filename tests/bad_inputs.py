"""The files and bodies of the bad-input corpus (tests/test_bad_input_corpus.py), made here.

Each maker is cached: the corpus sends many of them to more than one endpoint.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from functools import cache

from PIL import Image

from biometrics import demo_photos


def save(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


@cache
def white_jpeg() -> bytes:
    return save(Image.new("RGB", (640, 480), "white"), "JPEG")


@cache
def noisy_png() -> bytes:
    """A PNG whose pixel data is large (noise does not compress), to cut in the middle."""
    return save(Image.effect_noise((400, 400), 80).convert("RGB"), "PNG")


@cache
def png_49_megapixels() -> bytes:
    """The review's reproduction: ~60 KB that declares 7000 × 7000 pixels."""
    return save(Image.new("L", (7000, 7000), 128), "PNG")


@cache
def png_400_megapixels() -> bytes:
    return save(Image.new("1", (20_000, 20_000)), "PNG")


@cache
def webp_header_lies() -> bytes:
    """A small lossless WebP whose VP8L header declares 16384 × 16384 pixels (268 MP)."""
    data = bytearray(save(Image.new("RGB", (16, 16), "white"), "WEBP", lossless=True))
    vp8l = data.index(b"VP8L") + 8  # the chunk's data: signature 0x2f, then the size bits
    assert data[vp8l] == 0x2F
    bits = int.from_bytes(data[vp8l + 1 : vp8l + 5], "little")
    bits = (bits & ~0x0FFFFFFF) | (16383 << 14) | 16383  # width-1 and height-1, 14 bits each
    data[vp8l + 1 : vp8l + 5] = bits.to_bytes(4, "little")
    return bytes(data)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def png_header_lies(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose IHDR (with a valid CRC) declares a huge size."""
    data = bytearray(save(Image.new("RGB", (64, 64), "white"), "PNG"))
    ihdr = bytes(data[16:29])
    new = struct.pack(">II", width, height) + ihdr[8:]
    data[16:29] = new
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + new))
    return bytes(data)


@cache
def jpeg_header_lies() -> bytes:
    """A small JPEG whose SOF0 declares 65000 × 65000 pixels."""
    data = bytearray(white_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


@cache
def png_text_bomb() -> bytes:
    """A PNG with 60 compressed text chunks, each inflating to 900 KB (under Pillow's own
    limit of 1 MB a chunk, 64 MB in all), before its pixels: 54 MB of text on open."""
    data = save(Image.new("RGB", (100, 100), "white"), "PNG")
    idat = data.index(b"IDAT") - 4
    chunk = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * 900_000, 9))
    return data[:idat] + chunk * 60 + data[idat:]


@cache
def jpeg_with_exif_rotation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(Image.new("RGB", (640, 480), "white"), "JPEG", exif=exif.tobytes())


@cache
def jpeg_with_comment_junk() -> bytes:
    return save(
        Image.new("RGB", (320, 240), "white"), "JPEG", comment=b"<?php system($_GET[1]); ?>" * 2000
    )


@cache
def cmyk_jpeg() -> bytes:
    return save(Image.new("CMYK", (320, 240), (0, 0, 0, 0)), "JPEG")


@cache
def gray16_png() -> bytes:
    return save(Image.new("I;16", (320, 240), 30000), "PNG")


@cache
def palette_png() -> bytes:
    return save(Image.new("P", (320, 240), 3), "PNG", transparency=3)


@cache
def apng() -> bytes:
    frames = [Image.new("RGB", (200, 200), c) for c in ("white", "black", "red")]
    return save(frames[0], "PNG", save_all=True, append_images=frames[1:])


@cache
def gif() -> bytes:
    return save(Image.open(io.BytesIO(demo_photos.grace_hopper())), "GIF")


@cache
def bmp() -> bytes:
    return save(Image.new("RGB", (320, 240), "white"), "BMP")


@cache
def tiff() -> bytes:
    return save(Image.new("RGB", (320, 240), "white"), "TIFF")


@cache
def ico() -> bytes:
    return save(Image.new("RGB", (64, 64), "white"), "ICO")


@cache
def frame_3_megapixels() -> bytes:
    return save(Image.new("RGB", (2000, 1500), "white"), "JPEG")


def polyglot_jpeg_html() -> bytes:
    return white_jpeg() + b"<html><script>alert(document.cookie)</script></html>"


def polyglot_png_zip() -> bytes:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("evil.html", "<script>alert(1)</script>")
    return save(Image.new("RGB", (320, 240), "white"), "PNG") + zipped.getvalue()


SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">'
    b"<script>alert(1)</script><rect width='640' height='480'/></svg>"
)
HTML_AS_JPEG = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
