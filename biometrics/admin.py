from django.contrib import admin

from .models import ErasureRequest, ErasureStep, Holder, Photo, RecognitionEvent


@admin.register(Holder)
class HolderAdmin(admin.ModelAdmin):
    list_display = ["name", "school", "base_url", "enabled", "receives_templates"]
    list_filter = ["school", "enabled"]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["id", "student", "status", "reason", "source", "captured_at"]
    list_filter = ["status", "source"]
    readonly_fields = [f.name for f in Photo._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RecognitionEvent)
class RecognitionEventAdmin(admin.ModelAdmin):
    list_display = ["at", "student", "purpose", "device", "distance"]
    list_filter = ["purpose__code", "device"]
    list_select_related = ["student", "purpose"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ErasureStepInline(admin.TabularInline):
    model = ErasureStep
    extra = 0
    readonly_fields = [
        "system",
        "kind",
        "status",
        "attempts",
        "items_erased",
        "last_error",
        "verified_at",
    ]
    can_delete = False


@admin.register(ErasureRequest)
class ErasureRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "school", "trigger", "status", "requested_at", "completed_at"]
    list_filter = ["status", "trigger"]
    inlines = [ErasureStepInline]
    readonly_fields = ["subject_id", "trigger", "status", "requested_at", "completed_at"]
