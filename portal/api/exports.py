"""Parent export endpoints (docs/exports.md) and the published schema of data.json."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consent.languages import active
from portal.exports.schema import EXPORT_SCHEMA
from portal.models import Export
from portal.parent import (
    ExportGone,
    ExportNotReady,
    child_get,
    export_ask,
    export_download,
    export_get,
)

from .errors import ApiError
from .parent_view import ParentView
from .serializers import ErrorSerializer


class ExportOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Export.Status.values)
    progress = serializers.IntegerField()
    download_url = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    sha256 = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField(allow_null=True)


def export_document(export: Export, request, *, me: bool = False) -> dict:
    """The export's state; `me`: the child's own (its download is under /api/v1/me/)."""
    ready = export.status == Export.Status.READY
    download = "api-me-export-download" if me else "api-export-download"
    return {
        "id": export.pk,
        "status": export.status,
        "progress": export.progress,
        "download_url": request.build_absolute_uri(reverse(download, args=[export.pk]))
        if ready
        else None,
        "expires_at": export.expires_at,
        "sha256": export.sha256,
        "size": export.size,
    }


class ChildExportsView(ParentView):
    @extend_schema(
        request=None, responses={202: ExportOut, 403: ErrorSerializer, 404: ErrorSerializer}
    )
    def post(self, request, child_id):
        """Ask for a package of everything held about the child; built by a worker."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        # In the language asked (?lang=, Accept-Language), as the API's other answers.
        export = export_ask(guardian=request.guardian, child=child, language=active())
        return Response({"id": export.pk, "status": export.status}, status=status.HTTP_202_ACCEPTED)


class ExportView(ParentView):
    @extend_schema(responses={200: ExportOut, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request, export_id):
        return Response(
            ExportOut(
                export_document(export_get(guardian=request.guardian, export_id=export_id), request)
            ).data
        )


class ExportDownloadView(ParentView):
    @extend_schema(
        responses={(200, "application/zip"): bytes, 403: ErrorSerializer, 410: ErrorSerializer}
    )
    def get(self, request, export_id):
        """The ZIP, for the guardian who asked, until it expires (then 410, file deleted)."""
        return zip_or_error(lambda: export_download(guardian=request.guardian, export_id=export_id))


EXPIRED = "This download has expired and its file was deleted."


def zip_or_error(download: Callable[[], HttpResponse]) -> HttpResponse:
    """The package's streamed ZIP, or the API's answer for one that is gone or not ready (the
    parent's and the child's downloads alike)."""
    try:
        return download()
    except ExportGone:
        raise ApiError("expired", EXPIRED, 410) from None
    except ExportNotReady:
        raise ApiError("not_ready", "The download is not ready yet.", 409) from None


class ExportSchemaView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: None})
    def get(self, request):
        """The JSON Schema that every export's data.json is valid against."""
        return Response(EXPORT_SCHEMA)
