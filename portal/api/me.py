"""The child's own endpoints (SPEC §8): `GET /api/v1/me/`, `POST /api/v1/me/refusal/`, and for
the student their own consent, receipts and download. A child's bearer token (from a child's
link, exchanged at `POST /api/v1/auth/token/`) or session reaches these and nothing else."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consent.languages import active, language_read
from consent.models import Method
from consent.services import ConsentError
from portal.auth import client_ip
from portal.child import (
    child_export_ask,
    child_export_download,
    child_export_get,
    child_receipt_get,
    me_document,
    refusal_set,
    student_decision_record,
)

from .errors import ApiError
from .exports import ExportOut, export_document, zip_or_error
from .permissions import IsChild
from .serializers import ChildDocumentSerializer, ErrorSerializer


class ChildView(APIView):
    permission_classes = [IsChild]


class MyRefusalIn(serializers.Serializer):
    refuse = serializers.BooleanField()


class MyRefusalOut(serializers.Serializer):
    refusal = serializers.BooleanField()
    changed = serializers.BooleanField()
    receipt = serializers.DictField(allow_null=True)
    erasure_id = serializers.UUIDField(allow_null=True)


class StudentDecisionIn(serializers.Serializer):
    purpose = serializers.CharField(max_length=50)
    decision = serializers.ChoiceField(choices=["grant", "withdraw"])
    notice_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    # The language of the notice text read (GET's `notice_language`); the request's otherwise.
    notice_language = serializers.CharField(required=False, allow_blank=True, max_length=20)


def _who(request) -> dict:
    return {"ip": client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")}


class MeView(ChildView):
    @extend_schema(responses={200: None, 403: ErrorSerializer})
    def get(self, request):
        """The held-data document of the signed-in child, with `purposes` as the consents
        endpoint gives them, `refusal` (true while the child's refusal stands) and `voice`
        (since when, whether the child is an adult)."""
        document = me_document(child=request.child)
        body = ChildDocumentSerializer(document).data
        body["purposes"] = document["purposes"]
        body["consent_decisions"] = document["consent_decisions"]
        body["refusal"] = document["refusal"]
        return Response(body)


class RefusalView(ChildView):
    @extend_schema(request=MyRefusalIn, responses={201: MyRefusalOut, 400: ErrorSerializer})
    def post(self, request):
        """`{"refuse": true}`: the child's refusal, which wins over every parent; `false`:
        lift it (whoever typed it). 201 with the state now; `changed` false when the child had
        said so already (nothing new is recorded)."""
        data = MyRefusalIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            done = refusal_set(
                child=request.child,
                refuse=data.validated_data["refuse"],
                method=Method.API,
                **_who(request),
            )
        except ConsentError as exc:
            raise ApiError(exc.code, exc.detail, 403) from exc
        return Response(
            {
                "refusal": done.refusal,
                "changed": done.changed,
                "receipt": done.outcome.record.receipt if done.outcome else None,
                "erasure_id": done.erasure.pk if done.erasure else None,
            },
            status=status.HTTP_201_CREATED,
        )


class MeConsentsView(ChildView):
    @extend_schema(
        request=StudentDecisionIn,
        responses={201: None, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request):
        """An adult student's own grant or withdrawal for one purpose (403 `not_adult` below
        18: parents decide until then)."""
        if isinstance(request.data.get("purpose"), list | tuple) or "purposes" in request.data:
            raise ApiError(
                "bundled_consent", "One decision per purpose: send a single purpose code.", 400
            )
        data = StudentDecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            done = student_decision_record(
                child=request.child,
                purpose_code=data.validated_data["purpose"],
                decision=data.validated_data["decision"],
                notice_version=data.validated_data.get("notice_version"),
                language=language_read(data.validated_data.get("notice_language")),
                method=Method.API,
                **_who(request),
            )
        except ConsentError as exc:
            raise ApiError(exc.code, exc.detail, 403 if exc.code == "not_adult" else 400) from exc
        purpose_status = done.outcome.status_of(data.validated_data["purpose"])
        return Response(
            {
                "status": purpose_status.status,
                "reason": purpose_status.reason_text,
                "erasure_id": done.erasure.pk if done.erasure else None,
                "receipt": done.record.receipt,
            },
            status=status.HTTP_201_CREATED,
        )


class MeReceiptView(ChildView):
    @extend_schema(responses={200: None, 404: ErrorSerializer})
    def get(self, request, receipt_id):
        """A consent receipt of a decision about the child."""
        receipt = child_receipt_get(child=request.child, receipt_id=receipt_id)
        response = Response(receipt.body)
        response["Content-Disposition"] = receipt.content_disposition
        return response


class MeExportsView(ChildView):
    @extend_schema(request=None, responses={202: ExportOut})
    def post(self, request):
        """Ask for the child's own package, in the language asked (`Accept-Language`)."""
        export = child_export_ask(child=request.child, language=active())
        return Response({"id": export.pk, "status": export.status}, status=status.HTTP_202_ACCEPTED)


class MeExportView(ChildView):
    @extend_schema(responses={200: ExportOut, 404: ErrorSerializer})
    def get(self, request, export_id):
        export = child_export_get(child=request.child, export_id=export_id)
        return Response(ExportOut(export_document(export, request, me=True)).data)


class MeExportDownloadView(ChildView):
    @extend_schema(responses={(200, "application/zip"): bytes, 410: ErrorSerializer})
    def get(self, request, export_id):
        """The ZIP, for the child who asked, until it expires (then 410, file deleted)."""
        return zip_or_error(lambda: child_export_download(child=request.child, export_id=export_id))
