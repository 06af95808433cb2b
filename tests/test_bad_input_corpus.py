"""The bad-input corpus (issue 12, docs/bad-input.md): every JSON endpoint, the photo and
identify uploads, the sign-in form, the parent's consent form and the roster CSV (admin page and
command) are sent malformed JSON, wrong types, arrays, huge bodies, deep nesting, NUL bytes, odd
unicode, impossible dates, non-images, polyglots and decompression bombs.

For each input: no response ≥ 500, an API error is JSON with its code, and nothing is stored:
the row count of every model of the product's apps and the media files are as before. Two kinds
of work answer later, and are run here as their worker would run them, then checked too: a photo
whose header passed is decoded by the faces worker and must end `rejected` without its bytes
(its row stays, as the photo status endpoint reports it); a roster upload is a job whose report
stays (its CSV text dropped) while no bad line is stored.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.models import Photo, PhotoStatus
from biometrics.services import photo_process
from consent.models import RosterImport, StaffMembership
from consent.roster import roster_job_run
from portal.auth import api_key_create

from . import bad_inputs as make

WATCHED_APPS = {"consent", "biometrics", "portal", "auth", "sessions", "django_celery_beat"}
# Rows a refusal writes on purpose: the audit trail records refused enrolments.
NOT_STORED_DATA = {"consent.auditevent", "consent.auditchainhead"}


@dataclass
class World:
    child: object
    school: object
    api: APIClient  # the child's parent, by bearer token
    staff: APIClient  # the school's system, by API key (all scopes)
    web: Client  # the parent's browser, signed in
    admin: Client  # a school admin's browser
    anonymous: APIClient
    tmp: Path

    def url(self, template: str) -> str:
        return template.format(child=self.child.pk)


@dataclass(frozen=True)
class Bad:
    name: str
    send: Callable[[World], object]
    status: int | None = None  # None: any 4xx (or a page re-shown with its error)
    code: str | None = None  # the API's "error" code
    later: frozenset[str] = field(default_factory=frozenset)  # reasons the faces worker may give
    roster_job: bool = False


CORPUS: list[Bad] = []


def add(*cases: Bad) -> None:
    CORPUS.extend(cases)


# --- Every JSON endpoint: the same malformed bodies ------------------------------------------

JSON_ENDPOINTS = {
    "consents": ("api", "/api/v1/children/{child}/consents/"),
    "exports": ("api", "/api/v1/children/{child}/exports/"),
    "erasures": ("api", "/api/v1/children/{child}/erasures/"),
    "magic-link": ("anonymous", "/api/v1/auth/magic-link/"),
    "token": ("anonymous", "/api/v1/auth/token/"),
    "students": ("staff", "/api/v1/staff/students/"),
    "leave": ("staff", "/api/v1/staff/students/{child}/leave/"),
    "child-refusal": ("staff", "/api/v1/staff/students/{child}/child-refusal/"),
    "guardians": ("staff", "/api/v1/staff/guardians/"),
    "identify": ("staff", "/api/v1/identify/"),
}
VALID_LOOKING = b'{"purpose": "gate_access", "decision": "grant", "email": "p@example.com"}'
DEEP = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # 60 KB: under the size limit, 10,000 deep
GENERIC_BODIES = [
    # name, body, content type, status, code
    ("malformed", b'{"purpose": "gate_access",', "application/json", 400, "malformed_request"),
    ("array", b'[{"purpose": "gate_access", "decision": "grant"}]', None, 400, "invalid_body"),
    ("empty-array", b"[]", None, 400, "invalid_body"),
    ("string", b'"grant"', None, 400, "invalid_body"),
    ("number", b"42", None, 400, "invalid_body"),
    ("null", b"null", None, 400, "invalid_body"),
    ("deep-object", DEEP, None, 400, "invalid_body"),
    ("deep-array-200kb", b"[" * 100_000 + b"]" * 100_000, None, 413, "too_large"),
    ("3mb", VALID_LOOKING[:-1] + b', "pad": "' + b"x" * 3_000_000 + b'"}', None, 413, "too_large"),
    (
        "nul",
        b'{"purpose": "gate\\u0000access", "email": "a\\u0000@example.com"}',
        None,
        400,
        "invalid_body",
    ),
    ("lone-surrogate", b'{"purpose": "\\ud800", "decision": "grant"}', None, 400, "invalid_body"),
    ("nan", b'{"purpose": "gate_access", "notice_version": NaN}', None, 400, "invalid_body"),
    ("1e400", b'{"purpose": "gate_access", "notice_version": 1e400}', None, 400, "invalid_body"),
    ("bad-utf8", b'{"purpose": "\xff\xfe"}', None, 400, "malformed_request"),
    ("text-plain", VALID_LOOKING, "text/plain", 415, "unsupported_media_type"),
    (
        "form",
        b"purpose=gate_access&decision=grant",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
]


def _send_raw(client: str, template: str, body: bytes, content_type: str):
    def send(w: World):
        return getattr(w, client).generic("POST", w.url(template), body, content_type=content_type)

    return send


for endpoint, (who, template) in JSON_ENDPOINTS.items():
    for name, body, content_type, status, code in GENERIC_BODIES:
        add(
            Bad(
                f"{endpoint}/{name}",
                _send_raw(who, template, body, content_type or "application/json"),
                status,
                code,
            )
        )

add(
    Bad(
        "consents/50mb",  # the review's: accepted and stored before
        _send_raw(
            "api",
            JSON_ENDPOINTS["consents"][1],
            VALID_LOOKING[:-1] + b', "pad": "' + b"x" * 50_000_000 + b'"}',
            "application/json",
        ),
        413,
        "too_large",
    )
)


def _send_json(client: str, template: str, data):
    body = json.dumps(data).encode()
    return _send_raw(client, template, body, "application/json")


def json_cases(endpoint: str, cases: dict[str, object], status=400, code=None) -> None:
    who, template = JSON_ENDPOINTS[endpoint]
    for name, data in cases.items():
        add(Bad(f"{endpoint}/{name}", _send_json(who, template, data), status, code))


# --- Wrong types and values, per endpoint ----------------------------------------------------

GRANT = {"purpose": "gate_access", "decision": "grant"}
json_cases(
    "consents",
    {
        "bundled-list": {"purpose": ["gate_access", "attendance"], "decision": "grant"},
        "bundled-purposes": {"purposes": ["gate_access"], "decision": "grant"},
        "decision-maybe": {**GRANT, "decision": "maybe"},
        "decision-list": {**GRANT, "decision": ["grant"]},
        "purpose-object": {**GRANT, "purpose": {"code": "gate_access"}},
        "purpose-traversal": {**GRANT, "purpose": "../gate_access"},
        "purpose-rtl": {**GRANT, "purpose": "\u202egate_access"},
        "purpose-51": {**GRANT, "purpose": "g" * 51},
        "purpose-empty": {**GRANT, "purpose": ""},
        "notice-negative": {**GRANT, "notice_version": -1},
        "notice-zero": {**GRANT, "notice_version": 0},
        "notice-text": {**GRANT, "notice_version": "abc"},
        "notice-fraction": {**GRANT, "notice_version": 1.5},
        "notice-true": {**GRANT, "notice_version": True},
        "notice-2^63": {**GRANT, "notice_version": 2**63},
        "notice-10^30": {**GRANT, "notice_version": 10**30},
        "notice-stale": {**GRANT, "notice_version": 99},
        "empty-object": {},
    },
)
json_cases(
    "students",
    {
        "dob-2999": {"external_id": "S-9", "name": "Kid", "date_of_birth": "2999-01-01"},
        "dob-feb-30": {"external_id": "S-9", "name": "Kid", "date_of_birth": "2020-02-30"},
        "dob-number": {"external_id": "S-9", "name": "Kid", "date_of_birth": 20200101},
        "dob-us-format": {"external_id": "S-9", "name": "Kid", "date_of_birth": "01/02/2020"},
        "name-control-char": {"external_id": "S-9", "name": "Kid\u0007"},
        "name-201": {"external_id": "S-9", "name": "k" * 201},
        "external-id-list": {"external_id": ["S-9"], "name": "Kid"},
        "external-id-101": {"external_id": "s" * 101, "name": "Kid"},
        "class-object": {"external_id": "S-9", "name": "Kid", "class_name": {"a": 1}},
        "no-external-id": {"name": "Kid"},
    },
)


def _guardian(**changes):
    def body(w: World):
        return {
            "email": "new.parent@example.com",
            "name": "New Parent",
            "student_ids": [str(w.child.pk)],
            **changes,
        }

    return body


def _send_json_built(client: str, template: str, build):
    def send(w: World):
        body = json.dumps(build(w)).encode()
        return getattr(w, client).generic(
            "POST", w.url(template), body, content_type="application/json"
        )

    return send


for name, build in {
    "email-invalid": _guardian(email="not-an-email"),
    "email-300": _guardian(email="a" * 290 + "@example.com"),
    "email-crlf": _guardian(email="a@example.com\r\nBcc: x@evil.example"),
    "student-ids-string": _guardian(student_ids="abc"),
    "student-ids-empty": _guardian(student_ids=[]),
    "student-ids-51": _guardian(student_ids=[str(uuid.uuid4()) for _ in range(51)]),
    "student-ids-unknown": _guardian(student_ids=[str(uuid.uuid4())]),
    "student-ids-not-uuid": _guardian(student_ids=["not-a-uuid"]),
    "language-xx": _guardian(language="xx"),
    "pr-maybe": _guardian(parental_responsibility="maybe"),
    "name-control-char": _guardian(name="New\u0007Parent"),
    "name-list": _guardian(name=["New Parent"]),
}.items():
    add(
        Bad(
            f"guardians/{name}",
            _send_json_built("staff", JSON_ENDPOINTS["guardians"][1], build),
            400,
        )
    )

json_cases(
    "child-refusal",
    {
        "note-list": {"note": ["no"]},
        "note-2001": {"note": "n" * 2001},
        "purpose-unknown": {"note": "no", "purpose": "nope"},
        "purpose-list": {"note": "no", "purpose": ["gate_access"]},
    },
)
json_cases(
    "magic-link",
    {
        "email-missing": {},
        "email-invalid": {"email": "x"},
        "email-list": {"email": ["parent.a@example.com"]},
        "email-300": {"email": "a" * 290 + "@example.com"},
        "email-number": {"email": 12},
        "email-crlf": {"email": "a@example.com\r\nBcc: x@evil.example"},
    },
)
json_cases(
    "token",
    {
        "missing": {},
        "list": {"magic_token": ["x"]},
        "10k": {"magic_token": "x" * 10_000},
        "empty": {"magic_token": ""},
        "unknown": {"magic_token": "no-such-token"},
    },
)
EMBEDDING = [0.01] * 128  # far from any template: a valid one would not match either
IDENTIFY = {"purpose": "gate_access", "device": "Gate 1"}
json_cases(
    "identify",
    {
        "embedding-127": {**IDENTIFY, "embedding": EMBEDDING[:127]},
        "embedding-strings": {**IDENTIFY, "embedding": ["0.01"] * 128},
        "embedding-booleans": {**IDENTIFY, "embedding": [True] * 128},
        "embedding-1e308": {**IDENTIFY, "embedding": [1e308] * 128},
        "embedding-nested": {**IDENTIFY, "embedding": [[0.01]] * 128},
        "embedding-object": {**IDENTIFY, "embedding": {"0": 0.01}},
        "purpose-list": {**IDENTIFY, "purpose": ["gate_access"], "embedding": EMBEDDING},
        "purpose-unknown": {**IDENTIFY, "purpose": "canteen", "embedding": EMBEDDING},
        "purpose-missing": {"device": "Gate 1", "embedding": EMBEDDING},
        "device-10k": {**IDENTIFY, "device": "d" * 10_000, "embedding": EMBEDDING},
        "device-list": {**IDENTIFY, "device": ["Gate 1"], "embedding": EMBEDDING},
        "image-as-text": {**IDENTIFY, "image": "aGVsbG8="},
    },
)


# --- Uploads: the photo endpoint and identify --------------------------------------------------

PHOTOS = "/api/v1/staff/students/{child}/photos/"


def _upload(template: str, data: Callable[[], bytes], filename="photo.jpg", **fields):
    def send(w: World):
        image = SimpleUploadedFile(filename, data(), "image/jpeg")
        return w.staff.post(w.url(template), {"image": image, **fields}, format="multipart")

    return send


def photo(name: str, data: Callable[[], bytes], code: str | None = None, later=(), **kw) -> None:
    status = 202 if later else 422
    add(Bad(f"photo/{name}", _upload(PHOTOS, data, **kw), status, code, frozenset(later)))


photo("empty", lambda: b"", "empty_file")
photo("text", lambda: b"hello, this is not a picture", "not_an_image")
photo("pdf", lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not_an_image")
photo("html-named-jpg", lambda: make.HTML_AS_JPEG, "not_an_image")
photo("svg-with-script", lambda: make.SVG_WITH_SCRIPT, "not_an_image", filename="photo.svg")
photo("jpeg-magic-then-junk", lambda: b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" * 50, "not_an_image")
photo("gif", make.gif, "unsupported_format")
photo("bmp", make.bmp, "unsupported_format")
photo("tiff", make.tiff, "unsupported_format")
photo("ico", make.ico, "unsupported_format")
photo("png-49-megapixels", make.png_49_megapixels, "decompression_bomb")
photo("png-400-megapixels", make.png_400_megapixels, "decompression_bomb")
photo("webp-header-declares-268-megapixels", make.webp_header_lies, "decompression_bomb")
photo("png-header-declares-10-gigapixels", make.png_header_lies, "decompression_bomb")
photo("jpeg-header-declares-4-gigapixels", make.jpeg_header_lies, "decompression_bomb")
photo("png-1x1", lambda: make.save(make.Image.new("RGB", (1, 1)), "PNG"), "face_too_small")
photo("png-5000x20", lambda: make.save(make.Image.new("RGB", (5000, 20)), "PNG"), "face_too_small")
photo("over-20mb", lambda: b"\xff\xd8" + b"0" * (21 * 1024 * 1024), "too_large")
photo("gif-header-on-a-jpeg", lambda: b"GIF89a" + demo_photos.grace_hopper())
photo("png-text-chunk-bomb", make.png_text_bomb, "not_an_image")
photo("truncated-jpeg", lambda: demo_photos.grace_hopper()[:15000], later={"truncated_image"})
photo("truncated-png", lambda: make.noisy_png()[:200_000], later={"truncated_image"})
photo("blank", make.white_jpeg, later={"no_face"})
photo("two-faces", demo_photos.astronaut_full, later={"multiple_faces"})
photo("polyglot-jpeg-html", make.polyglot_jpeg_html, later={"no_face"})
photo("polyglot-png-zip", make.polyglot_png_zip, later={"no_face"}, filename="photo.png")
photo("cmyk-jpeg", make.cmyk_jpeg, later={"no_face"})
photo("png-16-bit", make.gray16_png, later={"no_face"}, filename="photo.png")
photo("png-palette", make.palette_png, later={"no_face"}, filename="photo.png")
photo("apng", make.apng, later={"no_face"}, filename="photo.png")
photo("exif-rotated", make.jpeg_with_exif_rotation, later={"no_face"})
photo("php-in-comment", make.jpeg_with_comment_junk, later={"no_face"})
photo("filename-traversal", make.white_jpeg, later={"no_face"}, filename="../../etc/passwd.jpg")
add(
    Bad("photo/no-image-field", lambda w: w.staff.post(w.url(PHOTOS), {}, format="multipart"), 400),
    Bad(
        "photo/image-as-text-field",
        lambda w: w.staff.post(w.url(PHOTOS), {"image": "aGVsbG8="}, format="multipart"),
        400,
        "missing_image",
    ),
    Bad(
        "photo/json-body",
        _send_json("staff", PHOTOS, {"image": "aGVsbG8="}),
        415,
        "unsupported_media_type",
    ),
    Bad(
        "photo/form-body",
        _send_raw("staff", PHOTOS, b"image=abc", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    ),
)

IDENTIFY_URL = "/api/v1/identify/"


def identify_upload(name: str, data: Callable[[], bytes], code: str | None, status=422, **fields):
    fields = {"purpose": "gate_access", "device": "Gate 1", **fields}
    add(Bad(f"identify-image/{name}", _upload(IDENTIFY_URL, data, **fields), status, code))


identify_upload("png-49-megapixels", make.png_49_megapixels, "decompression_bomb")
identify_upload("frame-3-megapixels", make.frame_3_megapixels, "frame_too_large")
identify_upload("over-2mb", lambda: b"\xff\xd8" + b"0" * (3 * 1024 * 1024), "too_large")
identify_upload("truncated-jpeg", lambda: demo_photos.grace_hopper_half()[:8000], "truncated_image")
identify_upload("text", lambda: b"not a picture", "not_an_image")
identify_upload("empty", lambda: b"", "empty_file")
identify_upload("blank", make.white_jpeg, "no_face")
identify_upload("device-10k", make.white_jpeg, None, status=400, device="d" * 10_000)
identify_upload("purpose-nul", make.white_jpeg, None, status=400, purpose="gate\x00access")
identify_upload("purpose-missing", make.white_jpeg, "missing_purpose", status=400, purpose="")
add(
    Bad(
        "identify-image/embedding-as-text",
        lambda w: w.staff.post(
            IDENTIFY_URL,
            {"purpose": "gate_access", "embedding": "0.1,0.2"},
            format="multipart",
        ),
        400,
        "bad_embedding",
    )
)


# --- The parent's pages: sign-in and the consent form ------------------------------------------


def sign_in(name: str, data, content_type="application/x-www-form-urlencoded") -> None:
    def send(w: World):
        client = Client()
        if content_type == "application/x-www-form-urlencoded":
            return client.post("/sign-in/", data)
        return client.generic("POST", "/sign-in/", data, content_type=content_type)

    add(Bad(f"sign-in/{name}", send, 200))


sign_in("email-nul", {"email": "a\x00@example.com"})
sign_in("email-10k", {"email": "a" * 10_000 + "@example.com"})
sign_in("email-missing", {})
sign_in("email-two-invalid", {"email": ["x", "y"]})
sign_in("email-script", {"email": "<script>alert(1)</script>@example.com"})
sign_in("email-crlf", {"email": "a@example.com\r\nBcc: x@evil.example"})
sign_in("email-rtl", {"email": "\u202eparent@example.com"})
sign_in("json-body", json.dumps({"email": "parent.a@example.com"}), "application/json")


def consent_form(name: str, data: dict) -> None:
    def send(w: World):
        return w.web.post(f"/children/{w.child.pk}/consent/", data)

    add(Bad(f"consent-form/{name}", send, 302))


consent_form("purpose-nul", {"purpose": "gate\x00access", "decision": "grant"})
consent_form("decision-junk", {"purpose": "gate_access", "decision": "<script>"})
consent_form("notice-text", {"purpose": "gate_access", "decision": "grant", "notice_version": "x"})
consent_form(
    "notice-30-digits", {"purpose": "gate_access", "decision": "grant", "notice_version": "9" * 30}
)
consent_form("purpose-two", {"purpose": ["gate_access", "attendance"], "decision": "maybe"})


# --- The roster CSV: the admin page (a queued job) and the command -----------------------------

HEADER = "external_id,name,date_of_birth,class_name,guardian_email,guardian_name\n"
ROSTERS = {
    "field-140kib": HEADER + "R1," + "n" * 140 * 1024 + "\n",
    "quoted-field-140kib": HEADER + 'R1,"' + "n" * 140 * 1024 + '"\n',
    "nul-in-name": HEADER + "R1,Nul\x00Name\n",
    "dob-2999": HEADER + "R1,Future Kid,2999-01-01\n",
    "dob-invalid": HEADER + "R1,Kid,2020-13-01\n",
    "dob-words": HEADER + "R1,Kid,yesterday\n",
    "control-char": HEADER + "R1,Bell\x07Kid\n",
    "name-201": HEADER + "R1," + "k" * 201 + "\n",
    "class-101": HEADER + "R1,Kid,," + "c" * 101 + "\n",
    "email-invalid": HEADER + "R1,Kid,,,not-an-email,Parent\n",
    "email-without-name": HEADER + "R1,Kid,,,p@example.com,\n",
    "missing-name": HEADER + "R1,\n",
    "no-header": "R1,Kid\n",
    "header-only": HEADER,
    "semicolons": HEADER.replace(",", ";") + "R1;Kid\n",
}
ROSTER_FILES: dict[str, Callable[[], bytes]] = {
    **{name: (lambda text=text: text.encode()) for name, text in ROSTERS.items()},
    "utf-16": lambda: (HEADER + "R1,Kid\n").encode("utf-16"),
    "binary": lambda: bytes(range(256)) * 64,
    "over-20mb": lambda: (HEADER + ("R1,Kid\n" * 3_000_000)).encode(),
}


def roster_page(name: str, data: Callable[[], bytes]) -> None:
    def send(w: World):
        upload = SimpleUploadedFile("roster.csv", data(), "text/csv")
        return w.admin.post("/admin/roster/", {"school": w.school.pk, "csv": upload})

    add(Bad(f"roster-page/{name}", send, roster_job=True))


def roster_command(name: str, data: Callable[[], bytes]) -> None:
    def send(w: World):
        path = w.tmp / "roster.csv"
        path.write_bytes(data())
        out = io.StringIO()
        try:
            call_command("import_roster", str(path), "--school", w.school.slug, stdout=out)
        except CommandError as exc:
            return CommandOutcome(str(exc))
        return CommandOutcome(out.getvalue())

    add(Bad(f"roster-command/{name}", send))


@dataclass
class CommandOutcome:
    output: str
    status_code: int = 200  # a command that reports (or refuses) is not a crash

    def get(self, name: str, default=None):
        return default


for name, data in ROSTER_FILES.items():
    roster_page(name, data)
for name in ("field-140kib", "nul-in-name", "dob-2999", "control-char", "utf-16", "binary"):
    roster_command(name, ROSTER_FILES[name])


# --- Running the corpus ----------------------------------------------------------------------


def snapshot(media: Path) -> tuple[dict[str, int], set[str]]:
    counts = {
        m._meta.label_lower: m._default_manager.count()
        for m in apps.get_models()
        if m._meta.app_label in WATCHED_APPS and m._meta.label_lower not in NOT_STORED_DATA
    }
    return counts, {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()}


@pytest.fixture
def world(school, purposes, child_a, api_a, parent_a, django_user_model, tmp_path) -> World:
    _, key = api_key_create(school=school, scopes=["roster", "enrol", "identify"])
    staff = APIClient()
    staff.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    web = Client()
    web.force_login(parent_a.user)
    admin_user = django_user_model.objects.create_user("admin_a", password="pw", is_staff=True)
    admin_user.groups.add(Group.objects.get(name="School admin"))
    StaffMembership.objects.create(user=admin_user, school=school)
    admin = Client()
    admin.force_login(admin_user)
    return World(child_a, school, api_a, staff, web, admin, APIClient(), tmp_path)


def run_later_work() -> None:
    """What the workers would do next: decode pending photos, run queued roster imports."""
    for photo in Photo.objects.filter(status=PhotoStatus.PENDING):
        photo_process(photo_id=photo.pk)
    for job in RosterImport.objects.filter(finished_at__isnull=True):
        roster_job_run(job_id=job.pk)


GROUPS = sorted({case.name.split("/")[0] for case in CORPUS})


def test_the_corpus_holds_over_a_hundred_inputs():
    assert len(CORPUS) >= 100, len(CORPUS)
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")  # the palette PNG input
@pytest.mark.parametrize("group", GROUPS)
def test_bad_input_is_refused_and_nothing_is_stored(group: str, world: World, media_dir):
    """Each input of the group in its own savepoint (rolled back after it), so that every input
    meets the same world; the failures are listed by input."""
    failures = []
    for case in (c for c in CORPUS if c.name.split("/")[0] == group):
        try:
            with transaction.atomic():
                check(case, world, media_dir)
                transaction.set_rollback(True)
        except Exception as exc:  # an AssertionError, or what a view raised (a 500)
            failures.append(f"{case.name}: {type(exc).__name__}: {str(exc)[:500]}")
    assert not failures, "\n".join(failures)


def check(case: Bad, world: World, media_dir: Path) -> None:
    before, files_before = snapshot(media_dir)
    response = case.send(world)

    assert response.status_code < 500
    if case.status is not None:
        assert response.status_code == case.status, getattr(response, "content", b"")[:300]
    if response.status_code >= 400 and str(response.get("Content-Type", "")).startswith(
        "application/json"
    ):
        body = response.json()
        assert body["error"] and "detail" in body, body
        if case.code is not None:
            assert body["error"] == case.code, body

    run_later_work()
    after, files_after = snapshot(media_dir)
    grew = {label: after[label] - before[label] for label in after if after[label] != before[label]}
    if case.later:
        photo_id = response.json()["id"]
        status = world.staff.get(f"/api/v1/staff/photos/{photo_id}/").json()
        assert status["status"] == "rejected", status
        assert status["reason"] in case.later, status
        assert not Photo.objects.get(pk=photo_id).storage_name  # its bytes are gone
        assert grew.pop("biometrics.photo") == 1  # the rejected photo's row, which reports it
        grew.pop("biometrics.childkey", None)  # the child's (empty) key, made for the upload
    if case.roster_job:
        for job in RosterImport.objects.all():
            assert job.finished_at is not None and job.csv_text == ""
        grew.pop("consent.rosterimport", None)  # the import's report
    assert grew == {}, f"stored {grew}"
    assert files_after == files_before, "left files"
