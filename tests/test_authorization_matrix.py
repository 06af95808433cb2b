"""The authorization matrix (issue 12): nobody reaches a child they have no right to.

Built from the URLconf and the admin registry, not from a hand list: every parent page and
endpoint with an object in its path, every staff endpoint, every admin view, action, form
field, inline and autocomplete field is tried by every actor against the objects of the family
or school that is not theirs. A new endpoint or admin is covered the day it is added (an
unknown path parameter fails here until this file learns what object it names).

The world: two schools (Alpha, Beta), a family at each (a child with a photo, a template, a
recognition event, an export, a consent receipt, and a sibling with an erasure; a guardian with
parental responsibility and one without; both children old enough to sign in to their own page
`/me/`), and staff of each role at each school. The children are principals too: a child
signed in reaches their own page and nothing else. A *leak* is a
request that answers 2xx/3xx for an object not the actor's, a page that names another school's
object, a form field that offers one, or an action that changes one.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models
from django.forms import ModelChoiceField
from django.forms.models import model_to_dict
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from biometrics import demo_photos
from biometrics.erasure import erasure_open
from biometrics.models import (
    ErasureRequest,
    ErasureStep,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
)
from biometrics.selectors import template_embedding
from biometrics.services import holder_create, photo_enrol
from consent.models import (
    AuditEvent,
    ConsentDecision,
    Guardian,
    Guardianship,
    Notice,
    Notification,
    NotificationException,
    Purpose,
    RosterImport,
    School,
    StaffMembership,
    Student,
)
from consent.services import (
    dpia_sign_off,
    notice_publish,
    notification_exception_record,
    purpose_create,
    purpose_update,
    staff_membership_create,
)
from portal.auth import api_key_create, api_token_issue
from portal.campaigns import campaign_create
from portal.child_auth import child_account, child_token_issue
from portal.exports import export_request
from portal.models import ApiKey, ConsentCampaign, Export

from .factories import (
    TEST_ACTOR,
    SchoolFactory,
    StudentFactory,
    dpo_of,
    grant,
    guardian,
    link,
)

# --- The world ----------------------------------------------------------------------------------


class Probe:
    """Where both schools' holders point: records any request an action sends them."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                probe.paths.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@dataclass
class Family:
    child: Student
    sibling: Student
    responsible: Guardian
    not_responsible: Guardian
    photo: Photo
    template: FaceTemplate
    export: Export
    erasure: ErasureRequest
    receipt_id: str


@dataclass
class Side:
    """One school and everything of it."""

    tag: str
    school: School
    family: Family
    staff: dict[str, object]  # role -> user
    objects: dict[type, list[models.Model]] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)


def _purpose(school, code, name):
    purpose = purpose_create(
        school=school,
        code=code,
        name=name,
        description="d",
        alternative="A card.",
        dpia_reference="DPIA-1",
        actor=TEST_ACTOR,
    )
    notice_publish(purpose=purpose, text=f"{name} notice", actor=TEST_ACTOR)
    dpia_sign_off(purpose=purpose, signed_by=dpo_of(school), actor=TEST_ACTOR)
    purpose_update(purpose=purpose, enabled=True, actor=TEST_ACTOR)
    return purpose


ROLES = {"School admin": "admin", "Enrolment operator": "enrolment", "DPO": "dpo"}


def build_side(tag: str, probe: Probe) -> Side:
    t = tag.lower()
    school = SchoolFactory(slug=f"{t}-school", name=f"{tag} School")
    gate = _purpose(school, "gate_access", f"{tag} gates")
    _purpose(school, f"{t}_library", f"{tag} library")  # a code only this school has
    born = timezone.localdate().replace(year=timezone.localdate().year - 14, day=1)
    child = StudentFactory(
        school=school, name=f"{tag} Child", class_name=f"{tag} class", date_of_birth=born
    )
    sibling = StudentFactory(
        school=school, name=f"{tag} Sibling", class_name=f"{tag} class", date_of_birth=born
    )
    responsible = guardian(f"pr.{t}@example.com", f"{tag} Responsible")
    other = guardian(f"nonpr.{t}@example.com", f"{tag} Carer")
    excused = guardian(f"excused.{t}@example.com", f"{tag} Excused")
    for kid in (child, sibling):
        link(responsible, kid)
        link(other, kid, responsible=False)
    decision = grant(child, gate, responsible)
    grant(sibling, gate, responsible)
    excused_link = link(excused, child, notified=False)
    exception = notification_exception_record(
        guardianship=excused_link, reason="not_found", actor=TEST_ACTOR
    )
    photo = photo_enrol(
        student=child, data=demo_photos.grace_hopper(), actor=TEST_ACTOR, process_now=True
    )
    template = FaceTemplate.objects.get(student=child)
    event = RecognitionEvent.objects.create(
        student=child, purpose=gate, device=f"{t}-gate", distance=0.3, at=timezone.now()
    )
    export = export_request(student=child, guardian=responsible)
    holder = holder_create(
        school=school,
        name=f"{tag} Till",
        base_url=f"{probe.url}/{t}",
        secret="s" * 16,
        actor=TEST_ACTOR,
    )
    erasure = erasure_open(student=sibling, trigger="staff", actor=TEST_ACTOR)
    key, _ = api_key_create(school=school, scopes=["roster"], name=f"{tag} key")
    campaign = campaign_create(school=school, purpose=gate, actor=TEST_ACTOR)
    job = RosterImport.objects.create(school=school, total_rows=1, csv_text="x")
    staff = {}
    for group, role in ROLES.items():
        user = get_user_model().objects.create_user(
            f"{role}.{t}@staff.example", password="pw", is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        staff_membership_create(user=user, school=school, role=role, actor=TEST_ACTOR)
        staff[group] = user
    family = Family(
        child,
        sibling,
        responsible,
        other,
        photo,
        template,
        export,
        erasure,
        str(decision.receipt_id),
    )
    side = Side(tag, school, family, staff)
    side.objects = {
        School: [school],
        Student: [child, sibling],
        Guardian: [responsible, other, excused],
        Guardianship: list(Guardianship.objects.filter(student__school=school)),
        Purpose: list(Purpose.objects.filter(school=school)),
        Notice: list(gate.notices.all()),
        Notification: list(Notification.objects.filter(guardianship__student__school=school)),
        NotificationException: [exception],
        ConsentDecision: list(ConsentDecision.objects.filter(student__school=school)),
        Photo: [photo],
        FaceTemplate: [template],
        RecognitionEvent: [event],
        Holder: [holder],
        ErasureRequest: [erasure],
        ErasureStep: list(erasure.steps.all()),
        Export: [export],
        ApiKey: [key],
        ConsentCampaign: [campaign],
        RosterImport: [job],
        StaffMembership: list(StaffMembership.objects.filter(school=school)),
        AuditEvent: list(AuditEvent.objects.filter(school_id=school.pk)[:5]),
        get_user_model(): list(staff.values()),
    }
    side.markers = [
        f"{tag} School",
        f"{t}-school",
        f"{tag} Child",
        f"{tag} Sibling",
        f"{tag} class",
        f"{tag} Responsible",
        f"{tag} Carer",
        f"{tag} Excused",
        f"pr.{t}@example.com",
        f"nonpr.{t}@example.com",
        f"{tag} gates",
        f"{t}_library",
        f"{tag} Till",
        f"{t}-gate",
        f"{tag} key",
    ] + [f"{r}.{t}@staff.example" for r in ROLES.values()]
    return side


@pytest.fixture
def world(db):
    probe = Probe()
    sides = {tag: build_side(tag, probe) for tag in ("Alpha", "Beta")}
    yield sides, probe
    probe.server.shutdown()
    probe.server.server_close()


@dataclass
class Tally:
    """Cells tried and leaks found, per area (printed: the figures the issue asks for)."""

    tried: Counter = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)

    def cell(self, area: str, ok: bool, what: str) -> None:
        self.tried[area] += 1
        if not ok:
            self.leaks.append(f"{area}: {what}")

    def report(self) -> str:
        return ", ".join(f"{a} {n}" for a, n in sorted(self.tried.items())) + (
            f"; total {sum(self.tried.values())} cells, {len(self.leaks)} leaking"
        )


def other(sides: dict[str, Side], tag: str) -> Side:
    return next(s for t, s in sides.items() if t != tag)


# --- Walking the URLconf -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str
    name: str | None
    namespace: str | None

    @property
    def params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.route)

    def url(self, values: dict[str, str]) -> str:
        return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), self.route)


def routes() -> list[Route]:
    found = []

    def walk(patterns, prefix, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            elif isinstance(p, URLPattern):
                found.append(Route(prefix + str(p.pattern), p.name, namespace))

    walk(get_resolver().url_patterns, "", None)
    return found


# Path parameters that name a family's object, and how to find it.
FAMILY_PARAMS = {
    "child_id": lambda f: f.child.pk,
    "photo_id": lambda f: f.photo.pk,
    "template_id": lambda f: f.template.pk,
    "export_id": lambda f: f.export.pk,
    "erasure_id": lambda f: f.erasure.pk,
    "receipt_id": lambda f: f.receipt_id,
    "student_id": lambda f: f.child.pk,
}
# Parameters of public pages (a sign-in token, a school's published page, a set-password link).
PUBLIC_PARAMS = {"token", "slug", "uidb64"}
# What a guardian without parental responsibility may still read of their own child (SPEC §8).
OPEN_TO_CARERS = {
    "portal:child",
    "portal:child-consent",
    "portal:consent-receipt",
    "api-child",
    "api-consents",
    "api-consent-receipt",
}
POST_BODY = {"purpose": "gate_access", "decision": "withdraw", "notice_version": 1}


def parent_routes() -> list[Route]:
    chosen = []
    for r in routes():
        if r.namespace == "admin" or r.route.startswith(("api/v1/staff/", "api/v1/identify")):
            continue
        params = set(r.params)
        if not params or params & PUBLIC_PARAMS:
            continue
        unknown = params - set(FAMILY_PARAMS)
        assert not unknown, f"{r.route}: teach the matrix what {unknown} names"
        chosen.append(r)
    return chosen


def label(r: Route) -> str:
    return f"{r.namespace}:{r.name}" if r.namespace else str(r.name)


def family_state() -> tuple:
    return (
        ConsentDecision.objects.count(),
        ErasureRequest.objects.count(),
        Export.objects.count(),
        Photo.objects.count(),
        Guardianship.objects.count(),
    )


def bearer(g: Guardian) -> APIClient:
    client = APIClient()
    token, _ = api_token_issue(guardian=g)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def session(g: Guardian) -> Client:
    client = Client()
    client.force_login(g.user)
    return client


def try_parent(client, route: Route, url: str, method: str):
    api = route.route.startswith("api/")
    if method == "GET":
        return client.get(url)
    if api:
        return client.post(url, POST_BODY, format="json")
    return client.post(url, POST_BODY)


def test_parent_pages_and_endpoints_never_cross_families(world):
    sides, _ = world
    tally = Tally()
    chosen = parent_routes()
    assert len(chosen) >= 20, [r.route for r in chosen]
    before = family_state()
    for tag, side in sides.items():
        victim = other(sides, tag).family
        own = side.family
        for g in (own.responsible, own.not_responsible):
            clients = {"session": session(g), "bearer": bearer(g)}
            for route in chosen:
                targets = {"victim": {p: FAMILY_PARAMS[p](victim) for p in route.params}}
                if "child_id" in route.params and len(route.params) > 1:
                    # own child, the other family's photo / template / receipt
                    targets["mixed"] = {**targets["victim"], "child_id": own.child.pk}
                for kind, values in targets.items():
                    url = route.url(values)
                    for via, client in clients.items():
                        if via == "bearer" and not route.route.startswith("api/"):
                            continue
                        for method in ("GET", "POST"):
                            r = try_parent(client, route, url, method)
                            tally.cell(
                                "parent",
                                r.status_code >= 400,
                                f"{g.email} {method} {url} ({kind}, {via}) -> {r.status_code}",
                            )
        # The lists name only the guardian's own children.
        for g in (own.responsible, own.not_responsible):
            for client, url in ((session(g), "/children/"), (bearer(g), "/api/v1/children/")):
                body = client.get(url).content.decode()
                tally.cell(
                    "parent",
                    str(victim.child.pk) not in body and victim.child.name not in body,
                    f"{g.email} {url} lists the other family",
                )
    # Nobody signed in: never an answer.
    anonymous = Client()
    for route in chosen:
        url = route.url({p: FAMILY_PARAMS[p](sides["Alpha"].family) for p in route.params})
        r = anonymous.get(url)
        tally.cell(
            "anonymous", r.status_code in (302, 401, 403, 404), f"GET {url} -> {r.status_code}"
        )
    assert family_state() == before, "a refused request changed something"
    print(f"\nparent matrix: {tally.report()}")
    assert tally.leaks == [], "\n".join(tally.leaks)


def test_a_guardian_without_parental_responsibility_gets_403_on_biometric_data(world):
    """Everything but the name and the purposes is refused to a guardian without parental
    responsibility, reading (GET) and acting (POST) alike."""
    sides, _ = world
    tally = Tally()
    for side in sides.values():
        own = side.family
        clients = {"session": session(own.not_responsible), "bearer": bearer(own.not_responsible)}
        for route in parent_routes():
            if label(route) in OPEN_TO_CARERS:
                continue
            url = route.url({p: FAMILY_PARAMS[p](own) for p in route.params})
            for via, client in clients.items():
                if via == "bearer" and not route.route.startswith("api/"):
                    continue
                method, r = "GET", client.get(url)
                if r.status_code == 405:  # an action (export, delete everything): try it
                    api = route.route.startswith("api/")
                    body = {"data": "{}", "content_type": "application/json"} if api else {}
                    method, r = "POST", client.post(url, **body)
                tally.cell(
                    "carer",
                    r.status_code in (403, 404),
                    f"{method} {url} ({via}) -> {r.status_code}",
                )
    print(f"\ncarer rows: {tally.report()}")
    assert tally.leaks == [], "\n".join(tally.leaks)


# --- The children ------------------------------------------------------------------------------


def is_me(route: Route) -> bool:
    """The child's own page and endpoints."""
    return (route.namespace == "portal" and (route.name or "").startswith("me")) or (
        route.name or ""
    ).startswith("api-me")


def sibling_params(family: Family) -> dict:
    """The family's objects a child signed in as `family.child` must not reach on their own
    page: the sibling's receipt, the parent's package (of this very child)."""
    return {
        "receipt_id": ConsentDecision.objects.filter(student=family.sibling)
        .values_list("receipt_id", flat=True)
        .first(),
        "export_id": family.export.pk,
    }


def child_clients(student: Student) -> dict:
    session_client = Client()
    session_client.force_login(child_account(student))
    bearer_client = APIClient()
    token, _ = child_token_issue(student=student)
    bearer_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return {"session": session_client, "bearer": bearer_client}


PARENT_PAGES = ("/children/", "/account/", "/api/v1/children/", "/verify-receipt/")


def test_a_child_reaches_only_their_own_page(world):
    """A child signed in (session or bearer) reaches no parent page or endpoint, for any
    family, their own included; on their own page, no object of the sibling's, nor the
    parent's package; never the admin or the staff API. Their page names no one else."""
    sides, _ = world
    tally = Tally()
    chosen = parent_routes()
    before = family_state()
    for tag, side in sides.items():
        own = side.family
        victim = other(sides, tag).family
        for via, client in child_clients(own.child).items():
            for route in chosen:
                if via == "bearer" and not route.route.startswith("api/"):
                    continue  # a bearer token is for the API; pages need the session
                targets = {"victim": {p: FAMILY_PARAMS[p](victim) for p in route.params}}
                if is_me(route):
                    targets["sibling"] = {p: sibling_params(own)[p] for p in route.params}
                else:
                    targets["own"] = {p: FAMILY_PARAMS[p](own) for p in route.params}
                for kind, values in targets.items():
                    url = route.url(values)
                    for method in ("GET", "POST"):
                        r = try_parent(client, route, url, method)
                        tally.cell(
                            "child",
                            r.status_code >= 400,
                            f"{tag} child {method} {url} ({kind}, {via}) -> {r.status_code}",
                        )
            pages = PARENT_PAGES[:3] if via == "session" else PARENT_PAGES[2:3]
            for url in pages:
                r = client.get(url)
                tally.cell("child", r.status_code == 403, f"{tag} child {url} -> {r.status_code}")
            for url in ("/admin/", "/admin/consent/student/") if via == "session" else ():
                r = client.get(url)
                tally.cell(
                    "child",
                    r.status_code == 302 and "/admin/login/" in r["Location"],
                    f"{tag} child {url} ({via}) -> {r.status_code}",
                )
            for route in staff_routes():
                url = route.url({p: FAMILY_PARAMS[p](own) for p in route.params})
                r = client.post(url, '{"note": "x"}', content_type="application/json")
                tally.cell(  # 415: an upload endpoint refuses a JSON body before anything
                    "child",
                    r.status_code in (401, 403, 415),
                    f"{tag} child POST {url} -> {r.status_code}",
                )
            # Their own page names nobody else: not the sibling, not the other school.
            for url in ("/me/", "/api/v1/me/") if via == "session" else ("/api/v1/me/",):
                r = client.get(url)
                body = r.content.decode()
                named = [m for m in other(sides, tag).markers if m in body] + [
                    m for m in (own.sibling.name, str(own.sibling.pk)) if m in body
                ]
                tally.cell(
                    "child",
                    r.status_code == 200 and own.child.name in body and not named,
                    f"{tag} child {url} ({via}) -> {r.status_code}, names {named}",
                )
    assert family_state() == before, "a refused request changed something"
    print(f"\nchild matrix: {tally.report()}")
    assert tally.leaks == [], "\n".join(tally.leaks)


# --- Staff API ---------------------------------------------------------------------------------


def key_client(school) -> APIClient:
    _, secret = api_key_create(school=school, scopes=list(ApiKey.SCOPES))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def staff_routes() -> list[Route]:
    chosen = [r for r in routes() if r.route.startswith(("api/v1/staff/", "api/v1/identify"))]
    for r in chosen:
        unknown = set(r.params) - set(FAMILY_PARAMS)
        assert not unknown, f"{r.route}: teach the matrix what {unknown} names"
    return chosen


def test_staff_endpoints_never_reach_another_school(world):
    sides, _ = world
    tally = Tally()
    for tag, side in sides.items():
        victim_side = other(sides, tag)
        victim = victim_side.family
        client = key_client(side.school)
        before = (
            family_state(),
            model_to_dict(Student.objects.get(pk=victim.child.pk)),
            ConsentDecision.objects.filter(student__school=victim_side.school).count(),
        )
        for route in staff_routes():
            url = route.url({p: FAMILY_PARAMS[p](victim) for p in route.params})
            if route.params:
                for method in ("GET", "POST"):
                    r = client.get(url) if method == "GET" else client.post(url, {"note": "x"})
                    tally.cell(
                        "staff API",
                        r.status_code >= 400,
                        f"{tag} key {method} {url} -> {r.status_code}",
                    )
        # Linking by the other school's student ids is refused.
        r = client.post(
            "/api/v1/staff/guardians/",
            {"email": "new@example.com", "name": "N", "student_ids": [str(victim.child.pk)]},
            format="json",
        )
        tally.cell("staff API", r.status_code == 400, f"{tag} key links the other school's child")
        # Identification answers only from the key's own school.
        r = client.post(
            "/api/v1/identify/",
            {"purpose": "gate_access", "embedding": template_embedding(victim.template).tolist()},
            format="json",
        )
        match = r.json().get("match") if r.status_code == 200 else None
        tally.cell(
            "staff API",
            match is None or match["student_id"] != str(victim.child.pk),
            f"{tag} key identified the other school's child",
        )
        after = (
            family_state(),
            model_to_dict(Student.objects.get(pk=victim.child.pk)),
            ConsentDecision.objects.filter(student__school=victim_side.school).count(),
        )
        tally.cell("staff API", after == before, f"{tag} key changed the other school")
    print(f"\nstaff API matrix: {tally.report()}")
    assert tally.leaks == [], "\n".join(tally.leaks)


# --- Admin -------------------------------------------------------------------------------------


def owner_schools(obj) -> set[int] | None:
    """The schools an object belongs to (None: to no school, i.e. the platform's)."""
    User = get_user_model()
    if isinstance(obj, School):
        return {obj.pk}
    if isinstance(obj, Guardian):
        return set(obj.guardianships.values_list("student__school_id", flat=True))
    if isinstance(obj, User):
        return set(obj.school_memberships.values_list("school_id", flat=True))
    for path in ("school_id", "student", "guardianship", "purpose", "request"):
        value = getattr(obj, path, None)
        if isinstance(value, int):
            return {value}
        if isinstance(value, models.Model):
            return owner_schools(value)
    return None


def snapshot(objs) -> list:
    rows = []
    for obj in objs:
        fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
        rows.append(None if fresh is None else model_to_dict(fresh))
    return rows


def as_request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def field_leaks(form, user, mine: set[int]) -> list[str]:
    found = []
    for name, f in form.fields.items():
        if not isinstance(f, ModelChoiceField):
            continue
        for obj in f.queryset:
            schools = owner_schools(obj)
            if not schools or not schools <= mine:
                found.append(f"{name} offers {type(obj).__name__} {obj.pk}")
    return found


def test_admin_never_shows_offers_accepts_or_acts_on_another_school(world):
    sides, probe = world
    tally = Tally()
    registry = admin.site._registry
    for tag, side in sides.items():
        theirs = other(sides, tag)
        mine = {side.school.pk}
        for role, user in side.staff.items():
            client = Client()
            client.force_login(user)
            request = as_request(user)
            area = f"admin ({role})"

            def names_theirs(html: str, theirs=theirs) -> list[str]:
                return [m for m in theirs.markers if m in html]

            for model, ma in registry.items():
                info = f"{model._meta.app_label}_{model._meta.model_name}"
                base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
                their_objects = theirs.objects.get(model, [])
                # The list, searched for their names, and its filters.
                for query in ("", f"?q={theirs.tag}", f"?q={theirs.family.child.name}"):
                    r = client.get(base + query)
                    html = r.content.decode() if r.status_code == 200 else ""
                    term = query.removeprefix("?q=")
                    html = html.replace(term, "") if term else html  # the search box echoes it
                    shown = names_theirs(html) + [
                        str(o.pk) for o in their_objects if f"{base}{o.pk}/change/" in html
                    ]
                    tally.cell(
                        area,
                        r.status_code in (200, 302, 403) and not shown,
                        f"{base}{query} shows {shown}",
                    )
                # Their objects: every object view, read or written.
                for obj in their_objects:
                    for view in ("change", "delete", "history"):
                        url = f"{base}{obj.pk}/{view}/"
                        for method in ("GET", "POST"):
                            r = (
                                client.get(url)
                                if method == "GET"
                                else client.post(url, {"post": "yes"})
                            )
                            tally.cell(
                                area,
                                r.status_code in (403, 404),
                                f"{method} {url} -> {r.status_code}",
                            )
                    for extra in ma.get_urls():
                        route = str(extra.pattern)
                        if (
                            "object_id" not in route
                            or extra.name is None
                            or not extra.name.endswith(("_enrol",))
                        ):
                            continue
                        url = base + re.sub(r"<(?:\w+:)?object_id>", str(obj.pk), route)
                        r = client.get(url)
                        tally.cell(
                            area, r.status_code in (403, 404), f"GET {url} -> {r.status_code}"
                        )
                # Actions on their objects change nothing of theirs.
                if their_objects:
                    for action in ma.get_actions(request):
                        before = snapshot(their_objects)
                        mark = (
                            AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
                        )
                        client.post(
                            base,
                            {
                                "action": action,
                                "_selected_action": [o.pk for o in their_objects],
                                "post": "yes",
                            },
                        )
                        touched = AuditEvent.objects.filter(
                            pk__gt=mark, school_id=theirs.school.pk
                        ).exists()
                        tally.cell(
                            area,
                            snapshot(their_objects) == before and not touched,
                            f"action {action} on {info} acted on {theirs.tag}",
                        )
                # Forms: every relation field and inline offers (so accepts) only our schools.
                forms = []
                if ma.has_add_permission(request):
                    forms.append(("add", ma.get_form(request, None)()))
                    page = client.get(base + "add/")
                    tally.cell(
                        area, not names_theirs(page.content.decode()), f"{base}add/ names theirs"
                    )
                for own in side.objects.get(model, [])[:1]:
                    if ma.has_view_or_change_permission(request, own):
                        forms.append(("change", ma.get_form(request, own)(instance=own)))
                        for formset, _inline in ma.get_formsets_with_inlines(request, own):
                            forms.append(("inline", formset(instance=own).empty_form))
                        page = client.get(f"{base}{own.pk}/change/")
                        tally.cell(
                            area,
                            not names_theirs(page.content.decode()),
                            f"{base}{own.pk}/change/ names theirs",
                        )
                for kind, form in forms:
                    leaks = field_leaks(form, user, mine)
                    tally.cell(area, not leaks, f"{info} {kind} form: {leaks}")
                    # And a value of theirs posted to each relation field is refused.
                    if kind != "add":
                        continue
                    for name, f in form.fields.items():
                        model_of = (
                            getattr(f.queryset, "model", None)
                            if isinstance(f, ModelChoiceField)
                            else None
                        )
                        theirs_of = theirs.objects.get(model_of, []) if model_of else []
                        if not theirs_of:
                            continue
                        count = model._default_manager.count()
                        r = client.post(base + "add/", {name: theirs_of[0].pk})
                        refused = (
                            r.status_code in (200, 403) and model._default_manager.count() == count
                        )
                        if r.status_code == 200:
                            refused = refused and "Select a valid choice" in r.content.decode()
                        tally.cell(area, refused, f"{info} add accepted their {name}")
                # Autocomplete of every relation field the admin or its inlines declare.
                sources = [(model, ma)] + [
                    (i.model, i)
                    for i in ma.get_inline_instances(request, side.objects.get(model, [None])[0])
                ]
                for source, holder in sources:
                    for name in holder.get_autocomplete_fields(request):
                        r = client.get(
                            "/admin/autocomplete/",
                            {
                                "app_label": source._meta.app_label,
                                "model_name": source._meta.model_name,
                                "field_name": name,
                                "term": "",
                            },
                        )
                        ids = (
                            {str(x["id"]) for x in r.json()["results"]}
                            if r.status_code == 200
                            else set()
                        )
                        remote = source._meta.get_field(name).related_model
                        their_ids = {str(o.pk) for o in theirs.objects.get(remote, [])}
                        tally.cell(
                            area,
                            not ids & their_ids,
                            f"autocomplete {source.__name__}.{name} offers theirs",
                        )
            # The autocomplete endpoint answers for any relation whose target has a searchable
            # admin, declared or not: every one answers only with this school's objects.
            for source in apps.get_models():
                for f in source._meta.get_fields():
                    if not (f.is_relation and f.concrete and f.related_model in registry):
                        continue
                    r = client.get(
                        "/admin/autocomplete/",
                        {
                            "app_label": source._meta.app_label,
                            "model_name": source._meta.model_name,
                            "field_name": f.name,
                            "term": "",
                        },
                    )
                    ids = [x["id"] for x in r.json()["results"]] if r.status_code == 200 else []
                    found = f.related_model._default_manager.filter(pk__in=ids)
                    outside = [o.pk for o in found if not (owner_schools(o) or set()) <= mine]
                    tally.cell(
                        area,
                        len(found) == len(ids)
                        and not outside
                        and all(owner_schools(o) for o in found),
                        f"autocomplete {source.__name__}.{f.name} offers {outside or ids}",
                    )
            # The site's own pages: dashboard, roster, a roster job of theirs.
            for url in ("/admin/", "/admin/dashboard/", "/admin/roster/"):
                r = client.get(url)
                html = r.content.decode() if r.status_code == 200 else ""
                tally.cell(
                    area, not names_theirs(html), f"{url} names theirs: {names_theirs(html)}"
                )
            r = client.get(f"/admin/roster/{theirs.objects[RosterImport][0].pk}/")
            tally.cell(area, r.status_code in (403, 404), f"their roster job -> {r.status_code}")
    tally.cell("admin", probe.paths == [], f"holders contacted: {probe.paths}")
    print(f"\nadmin matrix: {tally.report()}")
    assert tally.leaks == [], "\n".join(tally.leaks[:50])
