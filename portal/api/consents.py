"""Parent consent endpoints: GET/POST /api/v1/children/{id}/consents/ (docs/consent-rule.md,
"Decisions")."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from consent.languages import language_read
from consent.models import Method
from consent.selectors import consent_overview
from consent.services import ConsentError
from portal.auth import client_ip
from portal.parent import child_get, consent_receipt_get, decision_record

from .errors import ApiError
from .parent_view import ParentView
from .serializers import ErrorSerializer

BUNDLED = "One decision per purpose: send a single purpose code, not a list."
LANG = OpenApiParameter(
    "lang",
    str,
    OpenApiParameter.QUERY,
    description="A language of the portal (en, zh-hans); beats Accept-Language.",
)


class DecisionIn(serializers.Serializer):
    purpose = serializers.CharField(max_length=50)
    decision = serializers.ChoiceField(choices=["grant", "withdraw", "object"])
    notice_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    # The language of the notice text read (GET's `notice_language`); the request's otherwise.
    notice_language = serializers.CharField(required=False, allow_blank=True, max_length=20)


class DecisionOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=["active", "inactive"])
    erasure_id = serializers.UUIDField(allow_null=True)
    receipt = serializers.DictField()


class ConsentsView(ParentView):
    @extend_schema(
        parameters=[LANG],
        responses={200: None, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request, child_id):
        """Each purpose: status, reason, the notice in force, and every decision; the school's
        texts in the language asked (`?lang=`, else `Accept-Language`), with `notice_language`
        and the SHA-256 of the text returned (`notice_sha256`)."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        return Response({"purposes": consent_overview(child, viewer=request.guardian)})

    @extend_schema(
        request=DecisionIn,
        responses={201: DecisionOut, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request, child_id):
        """Grant, withdraw or object for one purpose. Withdrawal takes effect at once."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        if isinstance(request.data.get("purpose"), list | tuple) or "purposes" in request.data:
            raise ApiError("bundled_consent", BUNDLED, 400)
        data = DecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            outcome = decision_record(
                guardian=request.guardian,
                child=child,
                purpose_code=data.validated_data["purpose"],
                decision=data.validated_data["decision"],
                notice_version=data.validated_data.get("notice_version"),
                language=language_read(data.validated_data.get("notice_language")),
                method=Method.API,
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        except ConsentError as exc:
            code = 403 if exc.code in ("not_responsible", "adult_student") else 400
            raise ApiError(exc.code, exc.detail, code) from exc
        return Response(
            {
                "status": outcome.status.status,
                "reason": outcome.status.reason_text,
                "erasure_id": outcome.erasure.pk if outcome.erasure else None,
                "receipt": outcome.record.receipt,
            },
            status=status.HTTP_201_CREATED,
        )


class ReceiptView(ParentView):
    @extend_schema(responses={200: None, 404: ErrorSerializer})
    def get(self, request, child_id, receipt_id):
        """A consent receipt (Kantara CR v1.1 + ISO/IEC TS 27560 fields) as JSON."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        receipt = consent_receipt_get(guardian=request.guardian, child=child, receipt_id=receipt_id)
        response = Response(receipt.body)
        response["Content-Disposition"] = receipt.content_disposition
        return response
