"""One held-data document: the child page, the API and the download show the same things.

The child here has two photos, two templates, a recognition event, template copies stored in a
real reference holder, a look at a photo in the access log, and an erasure under way. Every
item and every system the page shows is in the package's data.json and index.html, and the
reverse; the API's document equals data.json in every field they share; the Chinese page, API
and package name the systems in Chinese while their stable names stay English.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from html.parser import HTMLParser
from unittest import mock
from uuid import UUID

import pytest
from django.utils import timezone, translation

from biometrics import demo_photos
from biometrics.faces import embedding_from_photo
from biometrics.matching import identify
from biometrics.models import Holder, Photo, TemplateCopy
from biometrics.selectors import held_data
from biometrics.services import erasure_request_by_parent, photo_enrol, template_copy_push
from biometrics.systems import MATCH_CACHE, PHOTO_STORAGE, PORTAL_DB
from portal.api.serializers import HeldDataSerializer
from portal.exports import document
from portal.exports.package import build_package
from portal.exports.schema import EXPORT_SCHEMA
from portal.parent import photo_shown

from .factories import TEST_ACTOR

ZH = "zh-hans"


@pytest.fixture
def child(child_a, parent_a, purposes, holder_proc, sent_jobs):
    holder = Holder.objects.create(
        school=child_a.school,
        name="Gate controller",
        base_url=holder_proc.info["url"],
        secret=holder_proc.info["secret"],
    )
    for photo in (demo_photos.grace_hopper(), demo_photos.grace_hopper_half()):
        photo_enrol(student=child_a, data=photo, actor=TEST_ACTOR, process_now=True)
    for copy in TemplateCopy.objects.filter(holder=holder):
        template_copy_push(copy_id=copy.pk)
    assert identify(
        school=child_a.school,
        purpose=purposes["gate_access"],
        embedding=embedding_from_photo(demo_photos.grace_hopper_half()),
        device="Main gate",
    )
    photo = Photo.objects.filter(student=child_a).first()
    photo_shown(guardian=parent_a, child=child_a, photo_id=photo.pk, via="web")
    # The workers are not running (sent_jobs), so everything is still held while it is listed.
    erasure_request_by_parent(student=child_a, guardian=parent_a)
    return child_a


def package(child, parent, language: str = "en") -> tuple[dict, Node]:
    out = io.BytesIO()
    build_package(student=child, guardian=parent, language=language, out=out)
    with zipfile.ZipFile(out) as zf:
        return json.loads(zf.read("data.json")), parse(zf.read("index.html").decode())


def test_the_page_and_the_package_show_the_same_items_and_systems(web_a, child, parent_a):
    page = parse(web_a.get(f"/children/{child.pk}/").content.decode())
    data, index = package(child, parent_a)

    photos = {p["id"]: p for p in data["photos"]}
    assert len(photos) == 2
    thumbnails = {src.split("/photos/")[1].split("/")[0] for src in page.values("img", "src")}
    assert thumbnails == set(photos)
    assert set(index.values("img", "src")) == {p["file"] for p in photos.values()}

    templates = {t["id"] for t in data["templates"]}
    assert len(templates) == 2
    shown = {i.removeprefix("template-") for i in page.values("div", "id", "template-")}
    assert shown == templates

    events = data["recognition_events"]
    assert events["count"] == len(events["items"]) == 1
    assert page.find(data_count="events")[0].text == "1"
    shown = [(when(r.attrs["data-at"]), r.cells()[1:3]) for r in page.find("tr", "data-at")]
    # The page names each event's purpose in the reader's language; data.json by its code.
    names = {p["code"]: p["name"] for p in data["purposes"]}
    assert shown == [(when(e["at"]), [e["device"], names[e["purpose"]]]) for e in events["items"]]

    rows = [(r.attrs["data-system"], *r.cells()) for r in page.find("tr", "data-system")]
    assert [s[0] for s in rows] == [
        PORTAL_DB.name,
        PHOTO_STORAGE.name,
        MATCH_CACHE.name,
        "Gate controller",
    ]
    assert rows == [
        (s["name"], s["label"], ", ".join(s["holds"]), str(s["items"])) for s in data["systems"]
    ]
    assert page.find(data_count="systems")[0].text == str(len(data["systems"]))
    recipients = index.following("recipients")
    assert [r.cells()[:2] for r in recipients.find("tr")[1:]] == [list(r[1:3]) for r in rows]
    holder = data["systems"][-1]
    assert holder["reachable"] is True and holder["items"] == 2
    assert len(holder["reported"]["templates"]) == 2  # what the holder itself says it holds

    looks = [(when(t.attrs["datetime"]), li.attrs["data-action"]) for li, t in page.accesses()]
    assert looks and looks == [(when(a["at"]), a["action"]) for a in data["access_log"]][::-1]

    erasures = {a.split("/erasures/")[1].strip("/") for a in page.values("a", "href", "/erasures/")}
    assert erasures == {e["id"] for e in data["erasures"]} and len(erasures) == 1

    purposes = {
        (p.attrs["data-purpose"], p.attrs["data-status"]) for p in page.find("div", "data-purpose")
    }
    assert purposes == {(p["code"], p["status"]) for p in data["purposes"]}
    receipts = {
        a.rsplit("/", 1)[1].removesuffix(".json") for a in page.values("a", "href", "/receipts/")
    }
    assert receipts == {d["receipt_id"] for d in data["consent_decisions"]}
    counts = [page.find(data_count=c)[0].text for c in ("photos", "templates", "events")]
    assert counts == ["2", "2", "1"]
    categories = index.following("categories", "ul").find("li")
    assert [li.text.split(" — ")[0] for li in categories[:3]] == [
        "2 photos",
        "2 face templates",
        "1 recognition event",
    ]


def test_the_api_document_equals_the_package_where_they_share_fields(api_a, child, parent_a):
    # Nothing is active while the erasure runs, so everything is "to be destroyed now": one
    # moment for both readers, or the two "now"s differ by the time between them.
    with mock.patch("django.utils.timezone.now", return_value=timezone.now()):
        api = api_a.get(f"/api/v1/children/{child.pk}/").json()
        data, _index = package(child, parent_a)
    assert api["retention"]["rule"].startswith("now")
    assert same(api["child"], data["child"]) >= {"id", "name", "school", "class_name", "status"}
    assert api["recognition_events"]["count"] == data["recognition_events"]["count"]
    for section, key in (
        ("purposes", "code"),
        ("photos", "id"),
        ("templates", "id"),
        ("recognition_events", "at"),
        ("systems", "name"),
        ("access_log", "at"),
        ("erasures", "id"),
    ):
        theirs = data[section]["items"] if section == "recognition_events" else data[section]
        ours = api[section]["recent"] if section == "recognition_events" else api[section]
        assert sorted(_key(r[key]) for r in ours) == sorted(_key(r[key]) for r in theirs), section
        by_key = {_key(r[key]): r for r in theirs}
        for row in ours:
            if section == "access_log":
                # data.json's access log is the whole trail as access_log.csv has it: who, as
                # the audit trail names them; the document says it in words ("You").
                row = {k: v for k, v in row.items() if k != "actor"}
            assert same(row, by_key[_key(row[key])]), section
    assert [s["name"] for s in api["systems"]] == [s["name"] for s in data["systems"]]
    assert same(api["retention"], data["retention"]) == {
        "destroy_by",
        "rule",
        "recognition_events_kept_days",
    }


def test_in_chinese_systems_are_labelled_in_chinese_and_named_in_english(
    web_a, api_a, child, parent_a
):
    with translation.override(ZH):
        labels = [str(s.label) for s in (PORTAL_DB, PHOTO_STORAGE, MATCH_CACHE)]
        photos_words = str(PHOTO_STORAGE.holds[0])
    assert labels == ["Guardian 门户数据库", "照片存储", "比对缓存"]
    web_a.cookies["django_language"] = ZH
    page = parse(web_a.get(f"/children/{child.pk}/").content.decode())
    rows = [(r.attrs["data-system"], *r.cells()) for r in page.find("tr", "data-system")]
    assert [r[0] for r in rows[:3]] == [PORTAL_DB.name, PHOTO_STORAGE.name, MATCH_CACHE.name]
    assert [r[1] for r in rows] == [*labels, "Gate controller"]
    assert rows[1][2] == photos_words == "照片"

    data, index = package(child, parent_a, ZH)
    assert [(s["name"], s["label"], ", ".join(s["holds"])) for s in data["systems"]] == [
        r[:3] for r in rows
    ]
    recipients = index.following("recipients")
    assert [r.cells()[:2] for r in recipients.find("tr")[1:]] == [list(r[1:3]) for r in rows]

    api = api_a.get(f"/api/v1/children/{child.pk}/", HTTP_ACCEPT_LANGUAGE=ZH).json()
    assert [(s["name"], s["label"], s["holds"]) for s in api["systems"]] == [
        (s["name"], s["label"], s["holds"]) for s in data["systems"]
    ]
    english = api_a.get(f"/api/v1/children/{child.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert [s["name"] for s in english["systems"]] == [s["name"] for s in api["systems"]]
    assert [s["label"] for s in english["systems"]] == [s["name"] for s in english["systems"]]


def test_the_serializers_and_the_schema_describe_the_document(child, parent_a):
    """The API's serializers publish fields of the document; the schema, what data.json picks."""
    held = held_data(child, viewer_guardian_id=parent_a.pk)
    for name, field in HeldDataSerializer().fields.items():
        section = held[name]
        rows = section if isinstance(section, list) else [section]
        fields = getattr(field, "child", field).fields
        required = {n for n, f in fields.items() if f.required}
        assert rows, name
        for row in rows:
            assert required <= set(row), (name, required - set(row))
    assert {s["kind"] for s in held["systems"]} == {"database", "media", "cache", "http"}
    properties = EXPORT_SCHEMA["properties"]

    def items(name):
        return properties[name]["items"]["properties"]

    assert list(properties["child"]["properties"]) == list(document.CHILD)
    for name, picked in (
        ("purposes", document.PURPOSE),
        ("photos", document.PHOTO),
        ("templates", document.TEMPLATE),
        ("consent_decisions", document.DECISION),
        ("erasures", document.ERASURE),
    ):
        assert list(items(name)) == list(picked), name
    assert set(properties["retention"]["properties"]) == set(held["retention"])
    for system in held["systems"]:
        assert set(system) <= set(items("systems"))


# ---------------------------------------------------------------------------------------------
# Reading pages the way a parent sees them (standard library only).
# ---------------------------------------------------------------------------------------------


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def same(ours: dict, theirs: dict) -> set[str]:
    """The fields both rows carry, after checking each holds the same value in both."""
    shared = set(ours) & set(theirs)
    for name in shared:
        assert _plain(ours[name]) == _plain(theirs[name]), (name, ours[name], theirs[name])
    return shared


def _plain(value):
    # The API writes times in the server's zone ("…Z" for UTC), data.json in UTC.
    if isinstance(value, str):
        try:
            if "T" in value and value[:4].isdigit():
                return when(value).astimezone(UTC)
            return str(UUID(value))
        except ValueError:
            return value
    return value


def _key(value) -> str:
    return str(_plain(value))


class Node:
    def __init__(self, tag: str, attrs: dict) -> None:
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    @property
    def text(self) -> str:
        return " ".join("".join(self._texts()).split())

    def _texts(self):
        yield from self.parts
        for child in self.children:
            yield from child._texts()

    def walk(self):
        for child in self.children:
            yield child
            yield from child.walk()

    def find(self, tag: str | None = None, attr: str | None = None, **data) -> list[Node]:
        wanted = {k.replace("_", "-", 1): v for k, v in data.items()}
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (attr is None or attr in n.attrs)
            and all(n.attrs.get(k) == v for k, v in wanted.items())
        ]

    def values(self, tag: str, attr: str, containing: str = "") -> list[str]:
        return [n.attrs[attr] for n in self.find(tag, attr) if containing in n.attrs[attr]]

    def cells(self) -> list[str]:
        return [td.text for td in self.children if td.tag == "td"]

    def following(self, heading_id: str, tag: str = "table") -> Node:
        """The first `tag` after the heading with this id (index.html's layout)."""
        nodes = list(self.walk())
        start = next(i for i, n in enumerate(nodes) if n.attrs.get("id") == heading_id)
        return next(n for n in nodes[start:] if n.tag == tag)

    def accesses(self) -> list[tuple[Node, Node]]:
        return [(li, li.find("time")[0]) for li in self.find("li", "data-action")]


class _Builder(HTMLParser):
    VOID = {"meta", "img", "input", "br", "link", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    return builder.root
