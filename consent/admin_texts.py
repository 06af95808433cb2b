"""The school's texts side by side in admin: the languages a school offers, a purpose's name,
description and alternative per language, and a notice version with its text in each language.

Writes go through the services (`consent.services.texts`), audited; the forms refuse first
what the services would refuse (a notice without a text in an offered language), so staff see
a message on the form, never an error page.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin

from .admin_doors import staff_actor
from .admin_scoping import SchoolScopedInline, ScopedInlineFormSet
from .languages import choices, default_language, default_languages
from .models import Notice, PurposeText, School
from .services import (
    notice_publish,
    notice_texts_problems,
    purpose_text_delete,
    purpose_text_set,
)


def text_field(code: str) -> str:
    """The notice form's field for the text in one language: text_zh_hans."""
    return "text_" + code.replace("-", "_")


class SchoolForm(forms.ModelForm):
    language = forms.ChoiceField(
        label="Default language", choices=choices, initial=default_language
    )
    languages = forms.MultipleChoiceField(
        label="Languages offered",
        choices=choices,
        initial=default_languages,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every purpose and every new notice version is written in each of these.",
    )

    class Meta:
        model = School
        fields = ["language", "languages"]  # the admin's fieldsets add the others


def _school_of(formset) -> School | None:
    purpose = formset.instance
    return purpose.school if getattr(purpose, "school_id", None) else None


class PurposeTextFormSet(ScopedInlineFormSet):
    def clean(self) -> None:
        super().clean()
        school = _school_of(self)
        base = school.language if school is not None else settings.LANGUAGE_CODE
        offered = school.offered() if school is not None else [base]
        for form in self.forms:
            language = getattr(form, "cleaned_data", {}).get("language")
            if not language or form.cleaned_data.get("DELETE"):
                continue
            if language == base or language not in offered:
                form.add_error(
                    "language",
                    "Write the purpose's own fields above in the school's default language; "
                    "here, only another language the school offers.",
                )


class PurposeTextInline(SchoolScopedInline):
    """A purpose's words in each other language the school offers, next to its own fields."""

    model = PurposeText
    formset = PurposeTextFormSet
    extra = 0
    fields = ["language", "name", "description", "alternative"]
    verbose_name = "text in another language"
    verbose_name_plural = "texts in the school's other languages"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":
            return forms.ChoiceField(choices=choices, label="Language")
        if db_field.name in ("description", "alternative"):
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 40})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class NoticeFormBase(forms.ModelForm):
    """A new version: its text in the school's default language (`text`) and one field per
    other language (`NoticeForm` declares one for each of settings.LANGUAGES)."""

    class Meta:
        model = Notice
        fields = ["text"]
        labels = {"text": "Text (the school's default language)"}

    def texts(self, school: School) -> dict[str, str]:
        """Every language's text of this version, the default's from `text` (on the add page,
        where every language has a box, a box left empty for the default is not needed)."""
        data = self.cleaned_data
        given = {code: data.get(text_field(code)) or "" for code, _name in settings.LANGUAGES}
        return {**given, school.language: data.get("text", "")}


NoticeForm = type(
    "NoticeForm",
    (NoticeFormBase,),
    {
        text_field(code): forms.CharField(
            label=f"Text ({name})",
            required=False,
            widget=forms.Textarea(attrs={"rows": 6, "cols": 40}),
            help_text="Required for each language the school offers, other than its default.",
        )
        for code, name in settings.LANGUAGES
    },
)


class NoticeFormSet(ScopedInlineFormSet):
    def clean(self) -> None:
        super().clean()
        school = _school_of(self)
        if school is None:
            return
        for form in self.extra_forms:
            if not isinstance(form, NoticeFormBase) or not form.has_changed():
                continue
            if not hasattr(form, "cleaned_data"):
                continue
            for _code, sentence in notice_texts_problems(school, form.texts(school)):
                form.add_error(None, sentence)


def _shown_in(code: str, name: str):
    @admin.display(description=f"Text ({name})")
    def shown(self, obj: Notice) -> str:
        if obj.language == code:
            return obj.text
        found = next((t for t in obj.texts.all() if t.language == code), None)
        return f"{found.text}\n\nSHA-256 {found.sha256}" if found else "—"

    return shown


class NoticeInline(SchoolScopedInline):
    """Published versions are read-only, each with its text in every language; a new one is
    written in every language the school offers at once."""

    model = Notice
    form = NoticeForm
    formset = NoticeFormSet
    extra = 0
    readonly_fields = ["version", "language", "sha256", "published_at"]

    def get_fields(self, request, obj=None):
        """`obj` is the purpose: on its page, a box for each other language its school offers;
        on the add page (no school yet), one for each of the portal's languages."""
        if obj is not None:
            others = [code for code in obj.school.offered() if code != obj.school.language]
        else:
            others = [code for code, _name in settings.LANGUAGES]
        return [
            "version",
            "language",
            "text",
            *(text_field(code) for code in others),
            "sha256",
            "published_at",
        ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("texts")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# A published version shows each language's text in the column of the field a new one fills.
for _code, _name in settings.LANGUAGES:
    setattr(NoticeInline, text_field(_code), _shown_in(_code, str(_name)))


class TextsAdminMixin:
    """For the purpose's admin: saves its texts' and its notices' inlines through the
    services."""

    def save_formset(self, request, form, formset, change):
        purpose = form.instance
        actor = staff_actor(request)
        # What Django's change message reads (nothing is saved by the formset itself).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is Notice:
            # New versions only (published ones are read-only); each gets the next number,
            # and earlier grants become stale.
            for notice_form in formset.extra_forms:
                if isinstance(notice_form, NoticeFormBase) and notice_form.has_changed():
                    texts = notice_form.texts(purpose.school)
                    notice_publish(
                        purpose=purpose,
                        text=texts.pop(purpose.school.language),
                        texts=texts,
                        actor=actor,
                    )
        elif formset.model is PurposeText:
            for text_form in formset.deleted_forms:
                if text_form.instance.pk:
                    purpose_text_delete(text=text_form.instance, actor=actor)
            for text_form in formset.forms:
                data = getattr(text_form, "cleaned_data", {})
                if not data or data.get("DELETE") or not text_form.has_changed():
                    continue
                purpose_text_set(
                    purpose=purpose,
                    language=data["language"],
                    name=data["name"],
                    description=data.get("description", ""),
                    alternative=data.get("alternative", ""),
                    actor=actor,
                )
        # The sign-offs' inline is read-only: nothing to save.
