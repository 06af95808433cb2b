"""The child's own pages: `/me/` and what it posts to (docs/child-sign-in.md).

Phone first, English and Simplified Chinese, in words a 12-year-old reads. Each view parses
its input, calls one of the child's use cases in `portal.child` and renders what it returns;
the JSON API (`portal/api/me.py`) calls the same ones.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consent.languages import active, language_read
from consent.models import Method
from consent.services import ConsentError

from .auth import client_ip
from .child import (
    child_export_ask,
    child_export_download,
    child_export_get,
    child_receipt_get,
    me_document,
    refusal_set,
    student_decision_record,
)
from .child_auth import child_account, child_link_consume, child_link_valid, student_for_user
from .parent import ExportGone, ExportNotReady

ONLY_FOR_THE_CHILD = gettext_lazy(
    "This page is for a pupil who signed in with their own link. Ask your school for one."
)
CHILD_LINK_INVALID = gettext_lazy(
    "This link does not work any more. It may be used already, or too old. Ask your teacher "
    "for a new one."
)

# The rule's reasons, in words a 12-year-old reads (the parents' words are consent.rules.REASONS).
CHILD_REASONS = {
    "active": gettext_lazy("Your face is used for this. A parent said yes."),
    "purpose_disabled": gettext_lazy("The school does not use faces for this."),
    "purpose_not_configured": gettext_lazy(
        "The school has not set this up yet, so your face is not used."
    ),
    "leaver": gettext_lazy("You have left the school, so your face is not used."),
    "child_refused": gettext_lazy("You said no, so your face is not used."),
    "student_withdrew": gettext_lazy("You said no, so your face is not used."),
    "adult_student": gettext_lazy("You are 18 now. Your face is not used unless you say yes."),
    "guardian_withdrew": gettext_lazy("A parent said no, so your face is not used."),
    "guardian_objected": gettext_lazy("A parent said no, so your face is not used."),
    "guardian_not_notified": gettext_lazy(
        "The school has not told all your parents yet, so your face is not used."
    ),
    "notice_changed": gettext_lazy(
        "The school changed its rules. Your face is not used until a parent says yes again."
    ),
    "expired": gettext_lazy("The yes ran out after a year, so your face is not used."),
    "no_consent": gettext_lazy("No parent has said yes, so your face is not used."),
}
# For a student of 18 or over, who decides alone.
ADULT_REASONS = {
    **CHILD_REASONS,
    "active": gettext_lazy("Your face is used for this. You said yes."),
    "notice_changed": gettext_lazy(
        "The school changed its rules. Your face is not used until you say yes again."
    ),
}


def child_required(view):
    """Signed in as a child (their own account, at or above the competence age); anyone
    else gets a page saying this is a pupil's page (403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        child = student_for_user(request.user)
        if child is None:
            return render(
                request, "portal/not_responsible.html", {"detail": ONLY_FOR_THE_CHILD}, status=403
            )
        request.child = child
        return view(request, *args, **kwargs)

    return wrapper


@require_http_methods(["GET", "POST"])
def child_link(request: HttpRequest, token: str) -> HttpResponse:
    """The child's printed link. Opening it shows one button; only its POST signs in."""
    if request.method == "GET":
        if not child_link_valid(token):
            return _link_invalid(request)
        return render(request, "portal/me_sign_in.html")
    child = child_link_consume(token)
    if child is None:
        return _link_invalid(request)
    login(request, child_account(child), backend="django.contrib.auth.backends.ModelBackend")
    return redirect("portal:me")


def _link_invalid(request: HttpRequest) -> HttpResponse:
    return render(
        request, "portal/me_link_invalid.html", {"message": CHILD_LINK_INVALID}, status=410
    )


@child_required
@require_GET
def me(request: HttpRequest) -> HttpResponse:
    """What is held about me, where, why, until when, who looked; say no; download."""
    child = request.child
    doc = me_document(child=child)
    words = ADULT_REASONS if doc["voice"]["adult"] else CHILD_REASONS
    for row in doc["purposes"]:
        row["child_reason"] = words.get(row["reason_code"], row["reason"])
    return render(request, "portal/me.html", {"doc": doc, "child": child})


@child_required
@require_POST
def me_refusal(request: HttpRequest) -> HttpResponse:
    """ "I don't want my face used" (refuse=1) or "I've changed my mind" (refuse=0)."""
    refuse = request.POST.get("refuse") == "1"
    try:
        done = refusal_set(
            child=request.child,
            refuse=refuse,
            method=Method.WEB,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except ConsentError:
        messages.error(request, _("That did not work. Please try again."))
    else:
        if done.refusal:
            messages.success(
                request, _("Done. Your face is not used any more. No parent can change that.")
            )
        else:
            messages.success(
                request,
                _("Done. Your face is used again only where a parent has said yes."),
            )
    return redirect("portal:me")


@child_required
@require_POST
def me_consent(request: HttpRequest) -> HttpResponse:
    """An adult student's own yes or no for one purpose (the same steps each way)."""
    try:
        version = int(request.POST.get("notice_version") or 0) or None
        done = student_decision_record(
            child=request.child,
            purpose_code=request.POST.get("purpose", ""),
            decision=request.POST.get("decision", ""),
            notice_version=version,
            language=language_read(request.POST.get("notice_language")),
            method=Method.WEB,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except (ConsentError, ValueError):
        messages.error(request, _("That did not work. Please read the notice and try again."))
    else:
        status = done.outcome.status_of(done.record.purpose.code)
        if status.active:
            messages.success(request, _("Done. You said yes."))
        else:
            messages.success(request, _("Done. Your face is not used for this."))
    return redirect("portal:me")


@child_required
@require_GET
def me_receipt(request: HttpRequest, receipt_id) -> HttpResponse:
    receipt = child_receipt_get(child=request.child, receipt_id=receipt_id)
    response = JsonResponse(receipt.body, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = receipt.content_disposition
    return response


@child_required
@require_POST
def me_export(request: HttpRequest) -> HttpResponse:
    export = child_export_ask(child=request.child, language=active())
    return redirect("portal:me-export", export.pk)


@child_required
@require_GET
def me_export_detail(request: HttpRequest, export_id) -> HttpResponse:
    export = child_export_get(child=request.child, export_id=export_id)
    return render(request, "portal/me_export.html", {"export": export})


@child_required
@require_GET
def me_export_download(request: HttpRequest, export_id) -> HttpResponse:
    try:
        return child_export_download(child=request.child, export_id=export_id)
    except ExportGone as gone:
        return redirect("portal:me-export", gone.export.pk)
    except ExportNotReady as waiting:
        return redirect("portal:me-export", waiting.export.pk)
