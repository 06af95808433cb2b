"""Enrolment from Django admin, through the same service as the API and the command."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from consent.actors import Actor

from .image_checks import ImageRejected
from .services import NoActiveConsent, photo_enrol


class EnrolPhotoForm(forms.Form):
    image = forms.ImageField(label="Enrolment photo", allow_empty_file=False)


def enrol_view(model_admin: admin.ModelAdmin, request, object_id):
    student = get_object_or_404(model_admin.get_queryset(request), pk=object_id)
    if not request.user.has_perm("biometrics.add_photo"):
        raise PermissionDenied
    form = EnrolPhotoForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            photo_enrol(
                student=student,
                data=form.cleaned_data["image"].read(),
                actor=Actor.staff(request.user),
                source="admin",
            )
        except NoActiveConsent as exc:
            messages.error(request, f"Not enrolled: {exc.detail} Nothing was stored.")
        except ImageRejected as exc:
            messages.error(request, f"Not enrolled: {exc.detail} Nothing was stored.")
        else:
            messages.success(request, "Photo received; its template is being computed.")
            return redirect(reverse("admin:consent_student_change", args=[student.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Enrol a photo for {student}",
        "form": form,
        "student": student,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/enrol_photo.html", context)
