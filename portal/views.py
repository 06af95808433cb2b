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
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image

from biometrics.models import ErasureStatus
from consent.languages import active, language_read
from consent.models import Method
from consent.services import ConsentError

from .auth import (
    LINK_INVALID,
    RateLimited,
    client_ip,
    magic_link_consume,
    magic_link_request,
    magic_link_valid,
)
from .child_auth import student_for_user
from .forms import SignInForm
from .parent import (
    NOT_RESPONSIBLE,
    ErasureNotFinished,
    ExportGone,
    ExportNotReady,
    NotResponsible,
    Receipt,
    child_document,
    child_get,
    child_summary,
    children_list,
    consent_receipt_get,
    decision_record,
    erasure_ask,
    erasure_get,
    erasure_receipt_get,
    export_ask,
    export_get,
    guardian_for_user,
    is_responsible,
    may_decide,
    photo_shown,
    responsible_check,
    template_shown,
)
from .parent import export_download as export_zip

THUMBNAIL_SIDE = 320


def guardian_required(view):
    """Signed in as a guardian (a staff account never is one). A use case's NotResponsible
    becomes a page saying why (403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:sign-in')}?next={request.path}")
        guardian = guardian_for_user(request.user)
        if guardian is None:
            return HttpResponseForbidden("This page is for parents and guardians.")
        request.guardian = guardian
        try:
            return view(request, *args, **kwargs)
        except NotResponsible as refused:  # or AdultStudent: each says why
            return render(
                request, "portal/not_responsible.html", {"detail": refused.detail}, status=403
            )

    return wrapper


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if guardian_for_user(request.user) is not None:
        return redirect("portal:children")
    if student_for_user(request.user) is not None:
        return redirect("portal:me")
    return redirect("portal:sign-in")


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            magic_link_request(
                email=form.cleaned_data["email"],
                ip=client_ip(request),
                next_url=request.GET.get("next", ""),
                language=active(),
            )
        except RateLimited as limited:
            response = render(
                request,
                "portal/sign_in.html",
                {"form": form, "minutes": -(-limited.retry_after // 60)},
                status=429,
            )
            response["Retry-After"] = str(limited.retry_after)
            return response
        # Same page whether or not the address is known: no account enumeration.
        return render(request, "portal/sign_in_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "portal/sign_in.html", {"form": form})


@require_http_methods(["GET", "POST"])
def magic_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link. Opening it shows one "Sign in" button; only its POST signs in, so a
    mail scanner or link preview that opens it uses nothing up (and gets no session)."""
    if request.method == "GET":
        if not magic_link_valid(token):
            return _link_invalid(request)
        return render(request, "portal/sign_in_confirm.html")
    used = magic_link_consume(token)
    if used is None:
        return _link_invalid(request)
    guardian, next_url = used
    login(request, guardian.user, backend="django.contrib.auth.backends.ModelBackend")
    response = redirect(next_url or "portal:children")
    if guardian.language:  # chosen: on this device too; unset: the browser's language goes on
        translation.activate(guardian.language)
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, guardian.language, samesite="Lax")
    return response


def _link_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/link_invalid.html", {"message": LINK_INVALID}, status=410)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign this browser out: its session is deleted (other devices: "sign out everywhere")."""
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
    """Everything held about the child; for a guardian without parental responsibility, the
    child's name and purposes, and why that is all (SPEC §8)."""
    guardian = request.guardian
    child = child_get(guardian=guardian, child_id=child_id)
    shown = None
    if show := request.GET.get("show"):
        # The 128 numbers are shown only when asked for, and the look is logged.
        seen = template_shown(guardian=guardian, child=child, template_id=show, via="web")
        shown = {"id": seen.template.pk, "embedding": [f"{x:.6f}" for x in seen.embedding]}
    responsible = is_responsible(guardian, child)
    return render(
        request,
        "portal/child.html",
        {
            "doc": child_document(guardian=guardian, child=child)
            if responsible
            else child_summary(guardian=guardian, child=child),
            "child": child,
            "shown": shown,
            "responsible": responsible,
            "not_responsible": NOT_RESPONSIBLE,
            "may_decide": may_decide(guardian, child),
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
            # The language of the notice text the page showed (the page's own otherwise).
            language=language_read(request.POST.get("notice_language")),
            method=Method.WEB,
            ip=client_ip(request),
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
@guardian_required
@require_GET
def photo_thumbnail(request: HttpRequest, child_id, photo_id) -> HttpResponse:
    """A small picture of an enrolled photo. Only an enrolled one: the faces worker decoded it
    and found it sound and within its limits, so this decode is safe in a web process (a
    pending photo has been checked from its header only; docs/bad-input.md)."""
    child = child_get(guardian=request.guardian, child_id=child_id)
    shown = photo_shown(
        guardian=request.guardian, child=child, photo_id=photo_id, via="web", enrolled_only=True
    )
    image = Image.open(io.BytesIO(shown.data))
    image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # a JPEG decodes at a fraction of its size
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
    responsible_check(request.guardian, child)
    if request.method == "POST":
        erasure = erasure_ask(
            guardian=request.guardian,
            child=child,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return redirect("portal:erasure", erasure.pk)
    return render(request, "portal/delete_confirm.html", {"child": child})


@guardian_required
@require_GET
def erasure_detail(request: HttpRequest, erasure_id) -> HttpResponse:
    """Progress, system by system; refreshes itself until done (no JavaScript needed)."""
    erasure = erasure_get(guardian=request.guardian, erasure_id=erasure_id)
    done = erasure.status == ErasureStatus.VERIFIED
    return render(
        request,
        "portal/erasure.html",
        {"erasure": erasure, "steps": erasure.steps.select_related("holder"), "done": done},
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
    export = export_ask(guardian=request.guardian, child=child, language=active())
    return redirect("portal:export", export.pk)


@guardian_required
@require_GET
def export_detail(request: HttpRequest, export_id) -> HttpResponse:
    export = export_get(guardian=request.guardian, export_id=export_id)
    return render(request, "portal/export.html", {"export": export})


@guardian_required
@require_GET
def export_download(request: HttpRequest, export_id) -> HttpResponse:
    try:
        return export_zip(guardian=request.guardian, export_id=export_id)
    except ExportGone as gone:
        return render(request, "portal/export_gone.html", {"export": gone.export}, status=410)
    except ExportNotReady as waiting:
        return redirect("portal:export", waiting.export.pk)


def _json_or_page(request, status: int, code: str, detail: str, template: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": code, "detail": detail}, status=status)
    return render(request, template, {"detail": detail}, status=status)


def handler404(request, exception=None) -> HttpResponse:
    return _json_or_page(request, 404, "not_found", "Not found.", "404.html")


def handler500(request) -> HttpResponse:
    # No details, ever: an error page must not leak what it was working on.
    return _json_or_page(request, 500, "server_error", "Something went wrong.", "500.html")
