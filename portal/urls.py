from django.contrib import admin
from django.urls import include, path

from . import account_views, child_views, public_views, views

portal_patterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign-in"),
    path("sign-in/<str:token>/", views.magic_link, name="magic-link"),
    path("sign-out/", views.sign_out, name="sign-out"),
    path("account/", account_views.account, name="account"),
    path("account/email/", account_views.email_change, name="email-change"),
    path("account/email/<str:token>/", account_views.email_confirm, name="email-confirm"),
    path(
        "account/sign-out-everywhere/",
        account_views.sign_out_everywhere,
        name="sign-out-everywhere",
    ),
    # The child's own page (SPEC §8): only a child signed in with their own link.
    path("me/", child_views.me, name="me"),
    path("me/sign-in/<str:token>/", child_views.child_link, name="child-link"),
    path("me/refusal/", child_views.me_refusal, name="me-refusal"),
    path("me/consent/", child_views.me_consent, name="me-consent"),
    path("me/receipts/<uuid:receipt_id>.json", child_views.me_receipt, name="me-receipt"),
    path("me/export/", child_views.me_export, name="me-export-ask"),
    path("me/exports/<uuid:export_id>/", child_views.me_export_detail, name="me-export"),
    path(
        "me/exports/<uuid:export_id>/download/",
        child_views.me_export_download,
        name="me-export-download",
    ),
    path("children/", views.children, name="children"),
    path("children/<uuid:child_id>/", views.child_detail, name="child"),
    path("children/<uuid:child_id>/consent/", views.child_consent, name="child-consent"),
    path(
        "children/<uuid:child_id>/receipts/<uuid:receipt_id>.json",
        views.consent_receipt,
        name="consent-receipt",
    ),
    path("schools/<slug:slug>/", public_views.transparency, name="transparency"),
    path("verify-receipt/", public_views.receipt_verify_page, name="receipt-verify"),
    path("children/<uuid:child_id>/delete/", views.child_delete_everything, name="child-delete"),
    path("children/<uuid:child_id>/export/", views.child_export, name="child-export"),
    path("exports/<uuid:export_id>/", views.export_detail, name="export"),
    path("exports/<uuid:export_id>/download/", views.export_download, name="export-download"),
    path("erasures/<uuid:erasure_id>/", views.erasure_detail, name="erasure"),
    path("erasures/<uuid:erasure_id>/receipt.json", views.erasure_receipt, name="erasure-receipt"),
    path(
        "children/<uuid:child_id>/photos/<uuid:photo_id>/thumbnail/",
        views.photo_thumbnail,
        name="photo-thumbnail",
    ),
]

urlpatterns = [
    path("", include((portal_patterns, "portal"))),
    path("i18n/setlang/", account_views.language_set, name="set_language"),
    path("api/v1/", include("portal.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "portal.views.handler404"
handler500 = "portal.views.handler500"
