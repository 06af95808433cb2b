"""The guardian's own account pages: their address (changed only by them, confirmed by a link
to the new one) and "sign out everywhere". Services in `portal.account` and `portal.auth`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.i18n import set_language

from .account import (
    CHANGE_INVALID,
    EmailChangeRefused,
    email_change_confirm,
    email_change_pending,
    email_change_request,
    email_change_valid,
    language_choose,
)
from .auth import guardian_sign_out_everywhere
from .forms import EmailChangeForm
from .parent import guardian_for_user
from .views import guardian_required


@guardian_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    return _account_page(request, EmailChangeForm())


def _account_page(request: HttpRequest, form: EmailChangeForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "portal/account.html",
        {
            "guardian": request.guardian,
            "form": form,
            "pending": email_change_pending(request.guardian),
        },
        status=status,
    )


@guardian_required
@require_POST
def email_change(request: HttpRequest) -> HttpResponse:
    """Ask to change the address; the change waits for the link mailed to the new one."""
    form = EmailChangeForm(request.POST)
    if not form.is_valid():
        return _account_page(request, form, status=400)
    try:
        email_change_request(guardian=request.guardian, new_email=form.cleaned_data["email"])
    except EmailChangeRefused as refused:
        form.add_error("email", str(refused.detail))
        return _account_page(request, form, status=400)
    messages.success(
        request,
        _(
            "We sent a confirmation link to %(email)s. Your address changes when you use it "
            "(within 24 hours)."
        )
        % {"email": form.cleaned_data["email"]},
    )
    return redirect("portal:account")


@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed to the new address: a page with one button; only its POST applies the
    change (no session needed: the link is the proof that the new address is theirs)."""
    if request.method == "GET":
        if not email_change_valid(token):
            return _confirm_failed(request, CHANGE_INVALID)
        return render(request, "portal/email_confirm.html")
    try:
        guardian = email_change_confirm(token=token)
    except EmailChangeRefused as refused:
        return _confirm_failed(
            request, refused.detail, status=409 if refused.code == "email_taken" else 410
        )
    signed_in = guardian_for_user(request.user)
    if signed_in is not None and signed_in.pk == guardian.pk:
        messages.success(
            request, _("Your email address is now %(email)s.") % {"email": guardian.email}
        )
        return redirect("portal:account")
    return render(request, "portal/email_confirmed.html", {"email": guardian.email})


def _confirm_failed(request: HttpRequest, detail, status: int = 410) -> HttpResponse:
    return render(request, "portal/email_confirm_failed.html", {"detail": detail}, status=status)


@guardian_required
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """End every session (this one too) and every app token of this guardian."""
    guardian_sign_out_everywhere(guardian=request.guardian)
    logout(request)
    messages.success(request, _("You are signed out on every device and app."))
    return redirect("portal:sign-in")


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The language chooser on every page: this browser's language (Django's cookie) and, for a
    signed-in guardian, their own from now on (every device, and their emails)."""
    response = set_language(request)
    guardian = guardian_for_user(request.user)
    if guardian is not None:
        language_choose(guardian=guardian, language=request.POST.get("language", ""))
    return response
