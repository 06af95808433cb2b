"""Parent endpoints of the JSON API (docs/architecture.md, "Parent pages and the JSON API")."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from biometrics.models import Photo
from consent.languages import active
from portal.auth import (
    RateLimited,
    api_token_issue,
    api_token_revoke,
    client_ip,
    magic_link_consume,
    magic_link_request,
)
from portal.child_auth import (
    child_link_consume,
    child_token_issue,
    child_token_revoke,
    student_for_user,
)
from portal.parent import (
    child_document,
    child_get,
    children_list,
    guardian_for_user,
    photo_shown,
    template_shown,
)

from .authentication import BearerTokenAuthentication
from .errors import ApiError
from .parent_view import ParentView
from .serializers import (
    ChildDocumentSerializer,
    ChildSummarySerializer,
    ErrorSerializer,
    MagicLinkRequestSerializer,
    TemplateDetailSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)

MAGIC_LINK_QUEUED = "If this address belongs to a parent, a sign-in link is on its way."


class MagicLinkView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=MagicLinkRequestSerializer,
        responses={202: None, 400: ErrorSerializer, 429: ErrorSerializer},
    )
    def post(self, request):
        """Email a one-time sign-in link. 202 whether or not the address is known (the same
        body, the same work: a worker sends it); 429 when this requester asked too often."""
        data = MagicLinkRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            magic_link_request(
                email=data.validated_data["email"], ip=client_ip(request), language=active()
            )
        except RateLimited as exc:
            raise exceptions.Throttled(wait=exc.retry_after) from None
        return Response({"detail": MAGIC_LINK_QUEUED}, status=status.HTTP_202_ACCEPTED)


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer, responses={200: TokenSerializer, 400: ErrorSerializer}
    )
    def post(self, request):
        """Exchange a sign-in link's token (single use) for an expiring bearer token: a
        parent's emailed link, or a child's link from the school (the token then signs in as
        the child, for `/api/v1/me/` only)."""
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        magic_token = data.validated_data["magic_token"]
        used = magic_link_consume(magic_token)
        if used is not None:
            token, expires_at = api_token_issue(guardian=used[0])
        elif (child := child_link_consume(magic_token)) is not None:
            token, expires_at = child_token_issue(student=child)
        else:
            raise ApiError(
                "invalid_magic_token",
                "The sign-in token is invalid, used already, or expired.",
                status.HTTP_400_BAD_REQUEST,
            )
        return Response(TokenSerializer({"token": token, "expires_at": expires_at}).data)

    @extend_schema(request=None, responses={204: None, 401: ErrorSerializer})
    def delete(self, request):
        """Revoke the bearer token presented: from now on it is refused (401)."""
        found = BearerTokenAuthentication().authenticate(request)
        guardian = guardian_for_user(found[0]) if found else None
        child = student_for_user(found[0]) if found and guardian is None else None
        if found is None or (guardian is None and child is None):
            raise exceptions.NotAuthenticated("Present the bearer token to revoke.")
        if guardian is not None:
            api_token_revoke(token=found[1], guardian=guardian)
        elif child is not None:
            child_token_revoke(token=found[1], student=child)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_authenticate_header(self, request) -> str:
        # Unauthenticated answers are 401 with the scheme to use (POST needs none).
        return "Bearer"


class ChildrenView(ParentView):
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


class ChildDetailView(ParentView):
    @extend_schema(
        responses={200: ChildDocumentSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
    )
    def get(self, request, child_id):
        """Everything held about the child: where, why, since when, until when, who looked.
        403 `not_responsible` for a guardian without parental responsibility."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        document = child_document(guardian=request.guardian, child=child)
        return Response(ChildDocumentSerializer(document).data)


class TemplateDetailView(ParentView):
    @extend_schema(
        responses={200: TemplateDetailSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
    )
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


class PhotoDetailView(ParentView):
    @extend_schema(responses={(200, "image/*"): bytes, 403: ErrorSerializer, 404: ErrorSerializer})
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
