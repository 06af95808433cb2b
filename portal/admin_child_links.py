"""The student admin's "print sign-in sheets" action (docs/child-sign-in.md): staff select the
children of a class (filter the list by class), and get a page to print with one card per
child, each with the child's one-time link and its QR code. Links are issued through
`portal.child_auth.child_link_issue` (audited; a child below the school's competence age, or
whose date of birth is unknown, gets none and is listed as such)."""

from __future__ import annotations

import segno
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from biometrics.admin import EnrolStudentAdmin
from consent.admin_doors import staff_actor
from consent.models import Student
from consent.services import ConsentError

from .child_auth import child_link_issue

NOT_ISSUED = {
    "below_competence_age": _("below the school's competence age"),
    "no_date_of_birth": _("date of birth not known"),
}


def qr_svg(url: str) -> str:
    """The link as an inline SVG QR code (no image file, no inline style: the CSP holds)."""
    return segno.make(url, error="m").svg_inline(scale=3, svgclass="qr", lineclass="qrline")


class ChildLinksStudentAdmin(EnrolStudentAdmin):
    actions = [*EnrolStudentAdmin.actions, "print_child_links"]

    @admin.action(
        description="Print sign-in sheets for the selected children (their own page)",
        permissions=["change"],
    )
    def print_child_links(self, request, queryset):
        actor = staff_actor(request)
        cards, refused = [], []
        for student in queryset.select_related("school").order_by("class_name", "name"):
            try:
                link = child_link_issue(student=student, actor=actor)
            except ConsentError as exc:
                refused.append({"student": student, "why": NOT_ISSUED.get(exc.code, exc.detail)})
                continue
            cards.append({"link": link, "qr": mark_safe(qr_svg(link.url))})  # noqa: S308 - segno's own SVG, the URL is ours
        context = {
            **self.admin_site.each_context(request),
            "title": "Sign-in sheets",
            "cards": cards,
            "refused": refused,
        }
        return TemplateResponse(request, "admin/child_links_sheet.html", context)


admin.site.unregister(Student)
admin.site.register(Student, ChildLinksStudentAdmin)
