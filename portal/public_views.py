"""The public pages: a school's transparency page and the receipt checker. No sign-in: they
name no child and no parent."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from biometrics.faces import MODEL_NAME, MODEL_VERSION
from biometrics.models import Holder
from biometrics.receipts import receipt_check
from biometrics.schedule import retention_schedule
from consent.audit_checkpoints import audit_checkpoint_latest
from consent.models import School
from consent.signing import key_history

# A receipt is a few kilobytes; a pasted text longer than this is not one.
RECEIPT_MAX_CHARS = 100_000
RECEIPT_PROBLEMS = {
    "not_json": gettext_lazy("That is not a receipt: paste the whole JSON file, braces included."),
    "unknown_kind": gettext_lazy("This is not a receipt this portal writes."),
    "not_signed": gettext_lazy(
        "This receipt has no signature (receipts written before signing began have none)."
    ),
    "unknown_key": gettext_lazy(
        "The receipt names a key that is not in this portal's key history."
    ),
    "outside_key_period": gettext_lazy(
        "The receipt is dated outside the period in which its key signed receipts."
    ),
    "bad_signature": gettext_lazy(
        "The signature does not match: the receipt was changed after it was signed, or this "
        "portal did not sign it."
    ),
}


def transparency(request: HttpRequest, slug: str) -> HttpResponse:
    """The school's public page: purposes, notices, systems, model and limits, retention (the
    schedule `erasure_due` applies), the keys that sign receipts, DPO."""
    school = get_object_or_404(School, slug=slug)
    purposes = [p for p in school.purposes.prefetch_related("notices__texts", "texts") if p.enabled]
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
            "tolerance": school.face_tolerance,
            "schedule": retention_schedule(school),
            "keys": key_history(),
            "audit_checkpoint": audit_checkpoint_latest()[0],
        },
    )


@require_http_methods(["GET", "POST"])
def receipt_verify_page(request: HttpRequest) -> HttpResponse:
    """How to check a consent or deletion receipt offline, the key history, and a form that
    checks a pasted receipt here (public: a receipt names no one)."""
    result = None
    if request.method == "POST":
        result = _receipt_checked(request.POST.get("receipt", ""))
    return render(
        request,
        "portal/receipt_verify.html",
        {"keys": key_history(), "result": result, "keys_url": _keys_url(request)},
    )


def _keys_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("api-keys"))


def _receipt_checked(text: str) -> dict:
    try:
        document = json.loads(text) if len(text) <= RECEIPT_MAX_CHARS else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return {"valid": False, "problem": RECEIPT_PROBLEMS["not_json"]}
    kind, verification = receipt_check(document)
    return {
        "valid": verification.valid,
        "kind": kind,
        "key": verification.key,
        "problem": RECEIPT_PROBLEMS.get(verification.problem, ""),
    }
