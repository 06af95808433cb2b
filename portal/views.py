"""The parent's web pages: server-rendered, mobile first, working without JavaScript.

A page parses its input, calls one of the parent's use cases in `portal.parent` (the same ones
the JSON API calls) and renders what it returns.
"""

from __future__ import annotations

import io
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image

from biometrics.faces import MODEL_NAME, MODEL_VERSION
from biometrics.models import ErasureStatus, Holder
from biometrics.receipts import public_key_b64
from biometrics.selectors import erasure_for_guardian, held_data
from biometrics.services import erasure_request_by_parent
from consent.audit_checkpoints import audit_checkpoint_latest
from consent.models import Guardian, Method, School
from consent.services import ConsentError

from .auth import LINK_INVALID, magic_link_consume, magic_link_request
from .exports import export_for_guardian, export_open, export_request
from .forms import SignInForm
from .models import Export
from .parent import (
    ErasureNotFinished,
    Receipt,
    child_get,
    children_list,
    consent_receipt_get,
    decision_record,
    erasure_receipt_get,
    photo_shown,
    template_shown,
    zip_response,
)

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
    rows = children_list(guardian=request.guardian)
    return render(request, "portal/children.html", {"rows": rows})


@guardian_required
@require_GET
def child_detail(request: HttpRequest, child_id) -> HttpResponse:
    child = child_get(guardian=request.guardian, child_id=child_id)
    document = held_data(child, viewer_guardian_id=request.guardian.pk)
    shown = None
    if show := request.GET.get("show"):
        # The 128 numbers are shown only when asked for, and the look is logged.
        seen = template_shown(guardian=request.guardian, child=child, template_id=show, via="web")
        shown = {"id": seen.template.pk, "embedding": [f"{x:.6f}" for x in seen.embedding]}
    return render(
        request,
        "portal/child.html",
        {
            "doc": document,
            "child": child,
            "shown": shown,
        },
    )


@guardian_required
@require_POST
def child_consent(request: HttpRequest, child_id) -> HttpResponse:
    """One tap: grant, withdraw or object for one purpose (the same steps each way)."""
    child = child_get(guardian=request.guardian, child_id=child_id)
    try:
        version = int(request.POST.get("notice_version") or 0) or None
        outcome = decision_record(
            guardian=request.guardian,
            child=child,
            purpose_code=request.POST.get("purpose", ""),
            decision=request.POST.get("decision", ""),
            notice_version=version,
            method=Method.WEB,
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except (ConsentError, ValueError) as exc:
        messages.error(request, getattr(exc, "detail", str(exc)))
    else:
        messages.success(request, outcome.status.reason_text)
        if outcome.erasure is not None:
            messages.info(
                request,
                _("Nothing is active any more: erasing everything held about your child."),
            )
    return redirect(reverse("portal:child", args=[child.pk]) + "#purposes")


@guardian_required
@require_GET
def consent_receipt(request: HttpRequest, child_id, receipt_id) -> HttpResponse:
    child = child_get(guardian=request.guardian, child_id=child_id)
    return _receipt_download(
        consent_receipt_get(guardian=request.guardian, child=child, receipt_id=receipt_id)
    )


def _receipt_download(receipt: Receipt) -> HttpResponse:
    response = JsonResponse(receipt.body, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = receipt.content_disposition
    return response


@require_GET
def transparency(request: HttpRequest, slug: str) -> HttpResponse:
    """The school's public page: purposes, notices, systems, model and limits, retention, DPO."""
    school = get_object_or_404(School, slug=slug)
    purposes = [p for p in school.purposes.prefetch_related("notices") if p.enabled]
    holders = Holder.objects.filter(school=school, enabled=True)
    return render(
        request,
        "portal/transparency.html",
        {
            "school": school,
            "purposes": purposes,
            "holders": holders,
            "model_name": MODEL_NAME,
            "model_version": MODEL_VERSION,
            "tolerance": settings.FACE_TOLERANCE,
            "public_key": public_key_b64(),
            "audit_checkpoint": audit_checkpoint_latest()[0],
        },
    )


@guardian_required
@require_GET
def photo_thumbnail(request: HttpRequest, child_id, photo_id) -> HttpResponse:
    child = child_get(guardian=request.guardian, child_id=child_id)
    shown = photo_shown(guardian=request.guardian, child=child, photo_id=photo_id, via="web")
    image = Image.open(io.BytesIO(shown.data))
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    response = HttpResponse(out.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "no-store, private"
    return response


@guardian_required
@require_http_methods(["GET", "POST"])
def child_delete_everything(request: HttpRequest, child_id) -> HttpResponse:
    """Confirm, then erase everything held about the child in every system."""
    child = child_get(guardian=request.guardian, child_id=child_id)
    if request.method == "POST":
        erasure = erasure_request_by_parent(
            student=child,
            guardian=request.guardian,
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return redirect("portal:erasure", erasure.pk)
    return render(request, "portal/delete_confirm.html", {"child": child})


@guardian_required
@require_GET
def erasure_detail(request: HttpRequest, erasure_id) -> HttpResponse:
    """Progress, system by system; refreshes itself until done (no JavaScript needed)."""
    erasure = erasure_for_guardian(request.guardian, erasure_id)
    done = erasure.status == ErasureStatus.VERIFIED
    return render(
        request,
        "portal/erasure.html",
        {"erasure": erasure, "steps": erasure.steps.all(), "done": done},
    )


@guardian_required
@require_GET
def erasure_receipt(request: HttpRequest, erasure_id) -> HttpResponse:
    try:
        receipt = erasure_receipt_get(guardian=request.guardian, erasure_id=erasure_id)
    except ErasureNotFinished:
        raise Http404 from None
    return _receipt_download(receipt)


@guardian_required
@require_POST
def child_export(request: HttpRequest, child_id) -> HttpResponse:
    child = child_get(guardian=request.guardian, child_id=child_id)
    export = export_request(student=child, guardian=request.guardian, language=_language(request))
    return redirect("portal:export", export.pk)


def _language(request) -> str:
    return translation.get_language() or request.guardian.language


@guardian_required
@require_GET
def export_detail(request: HttpRequest, export_id) -> HttpResponse:
    export = export_for_guardian(request.guardian, export_id)
    return render(request, "portal/export.html", {"export": export})


@guardian_required
@require_GET
def export_download(request: HttpRequest, export_id) -> HttpResponse:
    export = export_for_guardian(request.guardian, export_id)
    if export.status == Export.Status.EXPIRED:
        return render(request, "portal/export_gone.html", {"export": export}, status=410)
    if export.status != Export.Status.READY:
        return redirect("portal:export", export.pk)
    return zip_response(export, export_open(export, guardian=request.guardian))


def _json_or_page(request, status: int, code: str, detail: str, template: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": code, "detail": detail}, status=status)
    return render(request, template, {"detail": detail}, status=status)


def handler404(request, exception=None) -> HttpResponse:
    return _json_or_page(request, 404, "not_found", "Not found.", "404.html")


def handler500(request) -> HttpResponse:
    # No details, ever: an error page must not leak what it was working on.
    return _json_or_page(request, 500, "server_error", "Something went wrong.", "500.html")
