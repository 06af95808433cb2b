from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("auth/magic-link/", views.MagicLinkView.as_view(), name="api-magic-link"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
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
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[]),
        name="api-docs",
    ),
]
