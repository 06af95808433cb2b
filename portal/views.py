"""The parent's web pages: server-rendered, mobile first, working without JavaScript."""

from __future__ import annotations

import io
from functools import wraps

from django.contrib.auth import login, logout
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image

from biometrics.access import access_record
from biometrics.models import FaceTemplate, Photo, PhotoStatus
from biometrics.selectors import held_data
from biometrics.services import photo_bytes, template_embedding
from consent.actors import Actor
from consent.models import Guardian
from consent.rules import load_for_rule, purpose_statuses
from consent.selectors import children_for_guardian

from .auth import LINK_INVALID, magic_link_consume, magic_link_request
from .forms import SignInForm

THUMBNAIL_SIDE = 320


def guardian_required(view):
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:sign-in')}?next={request.path}")
        guardian = Guardian.objects.filter(user=request.user).first()
        if guardian is None:
            return HttpResponseForbidden("This page is for parents and guardians.")
        request.guardian = guardian
        return view(request, *args, **kwargs)

    return wrapper


def owned_child(request: HttpRequest, child_id):
    return get_object_or_404(children_for_guardian(request.guardian), pk=child_id)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and Guardian.objects.filter(user=request.user).exists():
        return redirect("portal:children")
    return redirect("portal:sign-in")


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        magic_link_request(
            email=form.cleaned_data["email"],
            ip=request.META.get("REMOTE_ADDR", ""),
            next_url=request.GET.get("next", ""),
        )
        # Same page whether or not the address is known: no account enumeration.
        return render(request, "portal/sign_in_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "portal/sign_in.html", {"form": form})


@require_GET
def magic_link(request: HttpRequest, token: str) -> HttpResponse:
    used = magic_link_consume(token)
    if used is None:
        return render(request, "portal/link_invalid.html", {"message": LINK_INVALID}, status=410)
    guardian, next_url = used
    login(request, guardian.user, backend="django.contrib.auth.backends.ModelBackend")
    translation.activate(guardian.language)
    response = redirect(next_url or "portal:children")
    response.set_cookie("django_language", guardian.language, samesite="Lax")
    return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("portal:sign-in")


@guardian_required
@require_GET
def children(request: HttpRequest) -> HttpResponse:
    loaded = load_for_rule(children_for_guardian(request.guardian).values("pk"))
    rows = [
        {"child": child, "statuses": purpose_statuses(child)}
        for child in sorted(loaded.values(), key=lambda c: c.name)
    ]
    return render(request, "portal/children.html", {"rows": rows})


@guardian_required
@require_GET
def child_detail(request: HttpRequest, child_id) -> HttpResponse:
    child = owned_child(request, child_id)
    document = held_data(child, viewer_guardian_id=request.guardian.pk)
    shown = None
    if show := request.GET.get("show"):
        # The 128 numbers are shown only when asked for, and the look is logged.
        template = FaceTemplate.objects.filter(pk=_uuid_or_none(show), student=child).first()
        if template is None:
            raise Http404
        shown = {"id": template.pk, "embedding": [f"{x:.6f}" for x in template_embedding(template)]}
        access_record(
            student=child,
            actor=Actor.guardian(request.guardian),
            action="biometrics.template_viewed",
            data={"template": str(template.pk), "via": "web"},
        )
    return render(request, "portal/child.html", {"doc": document, "child": child, "shown": shown})


@guardian_required
@require_GET
def photo_thumbnail(request: HttpRequest, child_id, photo_id) -> HttpResponse:
    child = owned_child(request, child_id)
    photo = get_object_or_404(
        Photo, pk=photo_id, student=child, status__in=[PhotoStatus.PENDING, PhotoStatus.ENROLLED]
    )
    image = Image.open(io.BytesIO(photo_bytes(photo)))
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    access_record(
        student=child,
        actor=Actor.guardian(request.guardian),
        action="biometrics.photo_viewed",
        data={"photo": str(photo.pk), "via": "web"},
    )
    response = HttpResponse(out.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "no-store, private"
    return response


def _uuid_or_none(value: str):
    import uuid  # noqa: PLC0415

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
