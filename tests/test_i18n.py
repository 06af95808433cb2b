"""The Simplified Chinese (zh-hans) translation: complete, compiled, consistent, and served.

When one of these fails after you added or changed a user-facing string:

    GUARDIAN_VAR_DIR=/tmp/i18n-var .venv/bin/python manage.py makemessages -l zh_Hans \
        --ignore=.venv --ignore=var --ignore=tests --ignore=bench
    # translate the new entries in locale/zh_Hans/LC_MESSAGES/django.po (remove "#, fuzzy")
    .venv/bin/python manage.py compilemessages --ignore=.venv

and commit both django.po and django.mo.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation.template import templatize

LANG = "zh-hans"
PO_PATH = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")
REBUILD = (
    "Re-run `manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var --ignore=tests "
    "--ignore=bench`, translate the new entries, then `manage.py compilemessages --ignore=.venv`."
)

# ---------------------------------------------------------------------------------------------
# A minimal .po reader (stdlib only).
# ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    line: int = 0

    @property
    def translations(self) -> list[str]:
        if self.msgid_plural is None:
            return [self.msgstr]
        return [self.msgstr_plural[n] for n in sorted(self.msgstr_plural)]

    def __str__(self) -> str:  # used in failure messages
        return f"django.po:{self.line} msgid {self.msgid!r}"


_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$')


def parse_po(path: Path) -> tuple[Entry, list[Entry]]:
    """Return (header, entries). Entries are blocks separated by blank lines, as gettext writes
    them; obsolete (#~) entries are kept but marked."""
    entries: list[Entry] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[tuple[int, str]] = []
    for lineno, raw in enumerate([*lines, ""], start=1):
        if raw.strip():
            block.append((lineno, raw.strip()))
        elif block:
            entry = _parse_block(block)
            if entry is not None:
                entries.append(entry)
            block = []
    headers = [e for e in entries if e.msgid == "" and e.msgctxt is None]
    assert len(headers) == 1, "django.po must have exactly one header entry"
    return headers[0], [e for e in entries if e is not headers[0]]


def _parse_block(block: list[tuple[int, str]]) -> Entry | None:
    entry = Entry(line=block[0][0])
    target = None
    seen_msgid = False
    for lineno, line in block:
        if line.startswith("#~"):
            entry.obsolete = True
            line = line[2:].strip()
            if not line:
                continue
        elif line.startswith("#,"):
            entry.flags.update(f.strip() for f in line[2:].split(",") if f.strip())
            continue
        elif line.startswith("#"):
            continue
        if line.startswith('"'):
            assert target is not None, f"django.po:{lineno}: string without a keyword"
            value = ast.literal_eval(line)
        else:
            match = _KEYWORD.match(line)
            assert match, f"django.po:{lineno}: cannot parse {line!r}"
            keyword, index, literal = match.groups()
            target = keyword if index is None else int(index)
            value = ast.literal_eval(literal)
            if keyword == "msgid":
                seen_msgid = True
                entry.line = lineno
            if isinstance(target, int):
                entry.msgstr_plural[target] = ""
            else:
                setattr(entry, target, "")
        if isinstance(target, int):
            entry.msgstr_plural[target] += value
        else:
            setattr(entry, target, getattr(entry, target) + value)
    return entry if seen_msgid else None


@pytest.fixture(scope="module")
def po():
    assert PO_PATH.exists(), f"{PO_PATH} is missing. {REBUILD}"
    return parse_po(PO_PATH)


@pytest.fixture(scope="module")
def entries(po):
    _, all_entries = po
    live = [e for e in all_entries if not e.obsolete]
    assert len(live) > 50, "django.po looks truncated"
    return live


# ---------------------------------------------------------------------------------------------
# (a) every entry is translated, nothing is fuzzy
# ---------------------------------------------------------------------------------------------


def test_header_is_final_and_has_chinese_plural_forms(po):
    header, _ = po
    assert "fuzzy" not in header.flags, "the .po header is still marked fuzzy"
    assert "Plural-Forms: nplurals=1; plural=0;" in header.msgstr
    assert "charset=UTF-8" in header.msgstr


def test_every_entry_is_translated_and_not_fuzzy(entries):
    problems = []
    for e in entries:
        if "fuzzy" in e.flags:
            problems.append(f"{e}: marked fuzzy")
        if e.msgid_plural is not None and sorted(e.msgstr_plural) != [0]:
            problems.append(f"{e}: Chinese has one plural form; expected only msgstr[0]")
        if any(not s.strip() for s in e.translations) or not e.translations:
            problems.append(f"{e}: empty msgstr")
    assert not problems, "\n".join(problems) + "\n" + REBUILD


# ---------------------------------------------------------------------------------------------
# (c) placeholders match
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[#0\- +]*(?:\d+|\*)?(?:\.\d+)?[sdifrxXeEgGcoa%]")


def placeholders(text: str) -> set[str]:
    """Named (%(name)s) and positional (%s, %d) placeholders; %% is not one."""
    found = set()
    for match in _PLACEHOLDER.finditer(text):
        token = match.group(0)
        if token == "%%":
            continue
        found.add(f"%({match.group(1)})" if match.group(1) else token)
    return found


def test_placeholder_helper():
    assert placeholders("%(days)s days, %(name)s and 100%%") == {"%(days)", "%(name)"}
    assert placeholders("离校后 %(days)s 天") == {"%(days)"}


def test_placeholders_in_translation_match_the_original(entries):
    problems = []
    for e in entries:
        expected = placeholders(e.msgid)
        if e.msgid_plural is not None:
            # The one Chinese form stands for the plural, which names the count.
            expected |= placeholders(e.msgid_plural)
        for msgstr in e.translations:
            got = placeholders(msgstr)
            if got != expected:
                problems.append(f"{e}: placeholders {sorted(got)} != {sorted(expected)}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (b) the compiled .mo matches the .po
# ---------------------------------------------------------------------------------------------


def _served(e: Entry, count: int | None = None) -> str:
    with translation.override(LANG):
        if e.msgid_plural is not None:
            if e.msgctxt is not None:
                return translation.npgettext(e.msgctxt, e.msgid, e.msgid_plural, count)
            return translation.ngettext(e.msgid, e.msgid_plural, count)
        if e.msgctxt is not None:
            return translation.pgettext(e.msgctxt, e.msgid)
        return translation.gettext(e.msgid)


def test_compiled_catalogue_exists():
    assert MO_PATH.exists(), f"{MO_PATH} is missing: run `manage.py compilemessages`."


def test_compiled_catalogue_matches_po_for_a_sample(entries):
    """Ten entries spread over the file: the .mo serves exactly the .po's msgstr."""
    singular = [e for e in entries if e.msgid_plural is None]
    step = max(1, len(singular) // 10)
    sample = singular[::step][:10]
    assert len(sample) == 10
    stale = [
        f"{e}: served {_served(e)!r}, .po has {e.msgstr!r}"
        for e in sample
        if _served(e) != e.msgstr
    ]
    assert not stale, "django.mo is older than django.po:\n" + "\n".join(stale) + "\n" + REBUILD


def test_compiled_catalogue_matches_po_everywhere(entries):
    """Every entry, plural ones for 1 and many, so a late edit to the .po cannot hide."""
    stale = []
    for e in entries:
        if e.msgid_plural is None:
            if _served(e) != e.msgstr:
                stale.append(f"{e}: served {_served(e)!r}, .po has {e.msgstr!r}")
        else:
            for n in (1, 2, 5):
                if _served(e, n) != e.msgstr_plural[0]:
                    stale.append(f"{e} (n={n}): served {_served(e, n)!r}")
    assert not stale, "django.mo is older than django.po:\n" + "\n".join(stale) + "\n" + REBUILD


# ---------------------------------------------------------------------------------------------
# The .po knows every marked string in the source (catches a forgotten makemessages).
# ---------------------------------------------------------------------------------------------

IGNORED_DIRS = {".venv", "var", "tests", "bench", "node_modules", "__pycache__", "locale"}
_PY_KEYWORDS = {
    # name: (context index or None, msgid index, plural index or None) — as makemessages uses.
    "_": (None, 0, None),
    "gettext": (None, 0, None),
    "gettext_lazy": (None, 0, None),
    "gettext_noop": (None, 0, None),
    "ngettext": (None, 0, 1),
    "ngettext_lazy": (None, 0, 1),
    "pgettext": (0, 1, None),
    "pgettext_lazy": (0, 1, None),
    "npgettext": (0, 1, 2),
    "npgettext_lazy": (0, 1, 2),
}
_TEMPLATE_CALL = re.compile(
    r"\b(npgettext|ngettext|pgettext|gettext)\(((?:\s*u?(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\s*,?)+)"
)
_LITERAL = re.compile(r"u?(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def _source_files(suffixes: tuple[str, ...]):
    base = Path(settings.BASE_DIR)
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part in IGNORED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if path.is_file() and path.suffix in suffixes and not path.name.startswith("."):
            yield path


def _python_msgids(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in _PY_KEYWORDS:
            continue
        ctx_i, id_i, _plural_i = _PY_KEYWORDS[name]
        args = node.args

        def const(i, args=args):
            if i is None or i >= len(args):
                return None
            arg = args[i]
            return (
                arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            )

        msgid = const(id_i)
        if msgid and (ctx_i is None or const(ctx_i) is not None):
            yield (const(ctx_i), msgid), f"{path}:{node.lineno}"


def _template_msgids(path: Path):
    src = path.read_text(encoding="utf-8")
    out = templatize(src, origin=str(path))
    for match in _TEMPLATE_CALL.finditer(out):
        literals = [ast.literal_eval(s) for s in _LITERAL.findall(match.group(2))]
        if match.group(1).startswith("p") or match.group(1).startswith("np"):
            context, msgid = literals[0], literals[1]
        else:
            context, msgid = None, literals[0]
        yield (context, msgid), str(path)


def test_po_has_every_string_marked_in_source(entries):
    known = {(e.msgctxt, e.msgid) for e in entries}
    missing = {}
    for path in _source_files((".py",)):
        for key, where in _python_msgids(path):
            missing.setdefault(key, where)
    for path in _source_files((".html", ".txt")):
        for key, where in _template_msgids(path):
            missing.setdefault(key, where)
    missing = {k: w for k, w in missing.items() if k not in known and k[1]}
    assert not missing, (
        "Marked for translation but not in django.po:\n"
        + "\n".join(f"{where}: {msgid!r}" for (_, msgid), where in sorted(missing.items()))
        + "\n"
        + REBUILD
    )


# ---------------------------------------------------------------------------------------------
# (d), (e) the pages are served in Chinese
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def sign_in_zh(entries):
    [entry] = [e for e in entries if e.msgid == "Sign in" and e.msgctxt is None]
    assert entry.msgstr and entry.msgstr != "Sign in"
    return entry.msgstr


def _assert_chinese(response, sign_in_zh):
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert f"<h1>{sign_in_zh}</h1>" in html
    assert "<h1>Sign in</h1>" not in html


def test_sign_in_page_is_english_by_default(client, db, sign_in_zh):
    response = client.get("/sign-in/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="en">' in html
    assert "<h1>Sign in</h1>" in html
    assert sign_in_zh not in html


def test_sign_in_page_follows_accept_language(client, db, sign_in_zh):
    _assert_chinese(client.get("/sign-in/", HTTP_ACCEPT_LANGUAGE=LANG), sign_in_zh)


def test_sign_in_page_follows_language_cookie(client, db, sign_in_zh):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = LANG
    _assert_chinese(client.get("/sign-in/"), sign_in_zh)


def test_language_switch_persists(client, db, sign_in_zh):
    response = client.post("/i18n/setlang/", {"language": LANG, "next": "/sign-in/"})
    assert response.status_code == 302
    assert response["Location"] == "/sign-in/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == LANG
    _assert_chinese(client.get("/sign-in/"), sign_in_zh)

    # And back to English.
    client.post("/i18n/setlang/", {"language": "en", "next": "/sign-in/"})
    assert "<h1>Sign in</h1>" in client.get("/sign-in/").content.decode()
