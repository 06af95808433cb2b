"""Admin for guardians: staff add a guardian to a child (the guardian with that address, if
there is one, is linked as they are) and correct what only their schools know of them.

A guardian's address is where their sign-in links go, so no staff member changes it (the field
is read-only, and `guardian_update` refuses it too); a guardian with children at another
school keeps their name and language as they are.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .admin_doors import ServiceAdmin, form_changes, staff_actor
from .admin_scoping import SchoolScopedAdmin, scoped_choices, staff_school_ids
from .languages import choices
from .models import Guardian, Student
from .services import guardian_delete, guardian_link_by_email, guardian_update

GUARDIAN_LINKED_AS_THEY_ARE = _(
    "This address belongs to a guardian already: they were linked to the child as they are "
    "(their name, address and language are theirs)."
)
EMAIL_HELP = _("Only the guardian can change their address, from their own page.")
SHARED_GUARDIAN_HELP = _(
    "This guardian also has children at another school: their details are theirs to keep."
)


class GuardianAddForm(forms.ModelForm):
    """A guardian is added to a child: a new one, or the one the address already belongs to."""

    student = forms.ModelChoiceField(label=_("Child"), queryset=Student.objects.none())
    parental_responsibility = forms.BooleanField(
        label=_("Parental responsibility"), required=False, initial=True
    )
    relationship = forms.CharField(label=_("Relationship"), required=False, max_length=50)

    class Meta:
        model = Guardian
        fields = ["email", "name", "language"]

    def validate_unique(self) -> None:
        """An address that is taken is linked, not refused (`guardian_link_by_email`)."""


@admin.register(Guardian)
class GuardianAdmin(ServiceAdmin, SchoolScopedAdmin):
    """Staff add a guardian to a child (linking the existing guardian with that address) and
    correct the name and language of guardians only their schools know. An address is never
    changed by staff: sign-in links go to it (`guardian_update` refuses it as well)."""

    school_path = "guardianships__student__school"
    list_display = ["name", "email", "language"]
    search_fields = ["name", "email"]
    exclude = ["user"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":  # the portal's languages, or not chosen
            return forms.ChoiceField(
                label=_("Language"),
                choices=[("", _("Not chosen: follows their browser")), *choices()],
                required=False,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        base = super().get_form(request, obj, change=change, form=GuardianAddForm, **kwargs)
        students = scoped_choices(Student, request.user)

        class ScopedAddForm(base):  # type: ignore[valid-type,misc]
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                self.fields["student"].queryset = students

        return ScopedAddForm

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        ids = staff_school_ids(request.user)
        shared = ids is not None and obj.guardianships.exclude(student__school_id__in=ids).exists()
        return [*fields, "email", *(["name", "language"] if shared else [])]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        shared = "name" in self.get_readonly_fields(request, obj)
        description = SHARED_GUARDIAN_HELP if shared else EMAIL_HELP
        return [(name, {**options, "description": description}) for name, options in fieldsets]

    def service_create(self, request, form) -> Guardian:
        data = form.cleaned_data
        guardian, created = guardian_link_by_email(
            email=data["email"],
            name=data["name"],
            language=data["language"],
            student=data["student"],
            parental_responsibility=data["parental_responsibility"],
            relationship=data["relationship"],
            actor=staff_actor(request),
        )
        if not created:
            messages.info(request, GUARDIAN_LINKED_AS_THEY_ARE)
        return guardian

    def service_update(self, request, obj, form) -> Guardian:
        return guardian_update(guardian=obj, actor=staff_actor(request), **form_changes(form))

    def service_delete(self, request, obj) -> None:
        # Their links go with them: a rule input of each of their children.
        guardian_delete(guardian=obj, actor=staff_actor(request))
