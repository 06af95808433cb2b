from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import consents, erasures, exports, keys, me, staff, views

urlpatterns = [
    path("auth/magic-link/", views.MagicLinkView.as_view(), name="api-magic-link"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    # The child's own (a child's link, exchanged at auth/token/): only that child's data.
    path("me/", me.MeView.as_view(), name="api-me"),
    path("me/refusal/", me.RefusalView.as_view(), name="api-me-refusal"),
    path("me/consents/", me.MeConsentsView.as_view(), name="api-me-consents"),
    path("me/receipts/<uuid:receipt_id>/", me.MeReceiptView.as_view(), name="api-me-receipt"),
    path("me/exports/", me.MeExportsView.as_view(), name="api-me-exports"),
    path("me/exports/<uuid:export_id>/", me.MeExportView.as_view(), name="api-me-export"),
    path(
        "me/exports/<uuid:export_id>/download/",
        me.MeExportDownloadView.as_view(),
        name="api-me-export-download",
    ),
    path("children/", views.ChildrenView.as_view(), name="api-children"),
    path("children/<uuid:child_id>/", views.ChildDetailView.as_view(), name="api-child"),
    path(
        "children/<uuid:child_id>/templates/<uuid:template_id>/",
        views.TemplateDetailView.as_view(),
        name="api-template",
    ),
    path(
        "children/<uuid:child_id>/photos/<uuid:photo_id>/",
        views.PhotoDetailView.as_view(),
        name="api-photo",
    ),
    path(
        "children/<uuid:child_id>/consents/", consents.ConsentsView.as_view(), name="api-consents"
    ),
    path(
        "children/<uuid:child_id>/consents/receipts/<uuid:receipt_id>/",
        consents.ReceiptView.as_view(),
        name="api-consent-receipt",
    ),
    path(
        "children/<uuid:child_id>/erasures/",
        erasures.ChildErasuresView.as_view(),
        name="api-child-erasures",
    ),
    path(
        "children/<uuid:child_id>/exports/",
        exports.ChildExportsView.as_view(),
        name="api-child-exports",
    ),
    path("exports/<uuid:export_id>/", exports.ExportView.as_view(), name="api-export"),
    path(
        "exports/<uuid:export_id>/download/",
        exports.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
    path("schema/export.json", exports.ExportSchemaView.as_view(), name="api-export-schema"),
    path("erasures/<uuid:erasure_id>/", erasures.ErasureView.as_view(), name="api-erasure"),
    path(
        "erasures/<uuid:erasure_id>/receipt/",
        erasures.ErasureReceiptView.as_view(),
        name="api-erasure-receipt",
    ),
    path("receipts/public-key/", erasures.PublicKeyView.as_view(), name="api-public-key"),
    path("keys/", keys.KeyHistoryView.as_view(), name="api-keys"),
    path("staff/students/", staff.StudentsView.as_view(), name="api-staff-students"),
    path("staff/students/<uuid:student_id>/leave/", staff.StudentLeaveView.as_view()),
    path("staff/students/<uuid:student_id>/child-refusal/", staff.ChildRefusalView.as_view()),
    path("staff/students/<uuid:student_id>/child-link/", staff.ChildLinkView.as_view()),
    path("staff/students/<uuid:student_id>/photos/", staff.StudentPhotosView.as_view()),
    path("staff/photos/<uuid:photo_id>/", staff.PhotoStatusView.as_view(), name="api-staff-photo"),
    path("staff/guardians/", staff.GuardiansView.as_view(), name="api-staff-guardians"),
    path("identify/", staff.IdentifyView.as_view(), name="api-identify"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    # Swagger UI's script is served as a file (the split view), so only its styles are inline;
    # its icons are data: images. These allowances are this page's only.
    path(
        "docs/",
        csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[])
        ),
        name="api-docs",
    ),
]
