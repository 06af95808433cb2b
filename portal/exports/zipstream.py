"""A ZIP written as a stream, each entry hashed as it is written (for SHA256SUMS).

Nothing is held in memory but one 64 KiB block per open entry, so a package of any size is
written in flat memory into whatever binary stream it is given (the export seals it as it goes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.utils import timezone

# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): starting with one of these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(cell: object) -> str:
    """The cell as text that a spreadsheet shows and never runs: a text that starts like a
    formula gets a leading apostrophe (a device named `=HYPERLINK(…)` stays a name). A plain
    number (a template's -0.0595…) is left as it is: a spreadsheet reads it as a number."""
    text = str(cell)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeCsvWriter:
    """csv.writer whose every cell goes through spreadsheet_safe."""

    def __init__(self, stream) -> None:
        self.writer = csv.writer(stream)

    def writerow(self, row) -> None:
        self.writer.writerow([spreadsheet_safe(cell) for cell in row])


class HashingWriter:
    """Wraps a ZIP entry's stream, hashing what goes into it (for SHA256SUMS). Small writes
    (a CSV row, one event) are gathered into 64 KiB blocks before compression and encryption."""

    BLOCK = 64 * 1024

    def __init__(self, raw) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.buffer = bytearray()

    def write(self, data) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.hash.update(data)
        self.buffer += data
        if len(self.buffer) >= self.BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.raw.write(bytes(self.buffer))
            self.buffer.clear()


class Package:
    """The ZIP being written: entries one after another, then SHA256SUMS of them all, last."""

    def __init__(self, out, progress: Callable[[int], None] | None = None) -> None:
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.sums: list[tuple[str, str]] = []
        self.progress = progress or (lambda pct: None)

    def entry(self, name: str, *, stored: bool = False) -> _Entry:
        info = zipfile.ZipInfo(name, date_time=timezone.localtime().timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        return _Entry(self, name, self.zip.open(info, "w", force_zip64=True))

    def write(self, name: str, data: bytes | str, *, stored: bool = False) -> None:
        with self.entry(name, stored=stored) as fh:
            fh.write(data)

    @contextmanager
    def csv(self, name: str, header: list[str]) -> Iterator:
        """A CSV writer (formula-safe cells) into a new entry, its header row written."""
        with self.entry(name) as fh:
            writer = SafeCsvWriter(_TextWriter(fh))
            writer.writerow(header)
            yield writer

    def close(self) -> None:
        lines = "".join(f"{digest}  {name}\n" for name, digest in self.sums)
        with self.zip.open("SHA256SUMS", "w") as fh:
            fh.write(lines.encode())
        self.zip.close()


class _Entry:
    def __init__(self, package: Package, name: str, raw) -> None:
        self.package, self.name, self.raw = package, name, raw
        self.writer = HashingWriter(raw)

    def __enter__(self) -> HashingWriter:
        return self.writer

    def __exit__(self, *exc) -> None:
        self.writer.flush()
        self.raw.close()
        self.package.sums.append((self.name, self.writer.hash.hexdigest()))


class _TextWriter(io.TextIOBase):
    """csv.writer needs a text stream; this one encodes into a HashingWriter."""

    def __init__(self, target: HashingWriter) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(text.encode("utf-8"))
        return len(text)
