"""Parent endpoints of the JSON API (docs/architecture.md, "Parent pages and the JSON API")."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from biometrics.models import Photo
from biometrics.selectors import held_data
from portal.auth import api_token_issue, magic_link_consume, magic_link_request
from portal.parent import child_get, children_list, photo_shown, template_shown

from .errors import ApiError
from .serializers import (
    ChildSummarySerializer,
    ErrorSerializer,
    HeldDataSerializer,
    MagicLinkRequestSerializer,
    TemplateDetailSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


class MagicLinkView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=MagicLinkRequestSerializer, responses={202: None, 400: ErrorSerializer})
    def post(self, request):
        """Email a one-time sign-in link. Always 202, whether or not the address is known."""
        data = MagicLinkRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        magic_link_request(email=data.validated_data["email"], ip=client_ip(request))
        return Response(
            {"detail": "If this address belongs to a parent, a sign-in link is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer, responses={200: TokenSerializer, 400: ErrorSerializer}
    )
    def post(self, request):
        """Exchange a magic-link token (single use) for an expiring bearer token."""
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        used = magic_link_consume(data.validated_data["magic_token"])
        if used is None:
            raise ApiError(
                "invalid_magic_token",
                "The sign-in token is invalid, used already, or expired.",
                status.HTTP_400_BAD_REQUEST,
            )
        token, expires_at = api_token_issue(guardian=used[0])
        return Response(TokenSerializer({"token": token, "expires_at": expires_at}).data)


class ChildrenView(APIView):
    @extend_schema(responses={200: ChildSummarySerializer(many=True)})
    def get(self, request):
        """The signed-in guardian's children and each purpose's status."""
        rows = [
            {
                "id": row.child.pk,
                "name": row.child.name,
                "school": row.child.school.name,
                "purposes": [{"code": s.code, "status": s.status} for s in row.statuses],
            }
            for row in children_list(guardian=request.guardian)
        ]
        return Response(ChildSummarySerializer(rows, many=True).data)


class ChildDetailView(APIView):
    @extend_schema(responses={200: HeldDataSerializer, 404: ErrorSerializer})
    def get(self, request, child_id):
        """Everything held about the child: where, why, since when, until when, who looked."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        document = held_data(child, viewer_guardian_id=request.guardian.pk)
        return Response(HeldDataSerializer(document).data)


class TemplateDetailView(APIView):
    @extend_schema(responses={200: TemplateDetailSerializer, 404: ErrorSerializer})
    def get(self, request, child_id, template_id):
        """One face template's metadata and its 128 numbers (the view is logged)."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        shown = template_shown(
            guardian=request.guardian, child=child, template_id=template_id, via="api"
        )
        template = shown.template
        body = {
            "id": template.pk,
            "created_at": template.created_at,
            "model": template.model,
            "model_version": template.model_version,
            "detector": template.detector,
            "landmarks": template.landmarks,
            "dimensions": template.dimensions,
            "photo_id": template.photo_id,
            "embedding": [float(x) for x in shown.embedding],
        }
        return Response(TemplateDetailSerializer(body).data)


class PhotoDetailView(APIView):
    @extend_schema(responses={(200, "image/*"): bytes, 404: ErrorSerializer})
    def get(self, request, child_id, photo_id):
        """The enrolment photo's original bytes (the view is logged)."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        shown = photo_shown(guardian=request.guardian, child=child, photo_id=photo_id, via="api")
        return photo_response(shown.photo, shown.data)


def photo_response(photo: Photo, data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type=photo.content_type)
    response["Content-Length"] = str(len(data))
    response["Content-Disposition"] = f'inline; filename="{photo.pk}"'
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    return response
