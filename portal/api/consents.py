"""Parent consent endpoints: GET/POST /api/v1/children/{id}/consents/ (SPEC §8)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from biometrics.erasure import OPEN
from biometrics.models import ErasureRequest
from consent.models import ConsentDecision, Method, Purpose
from consent.rules import load_for_rule, purpose_statuses
from consent.selectors import consent_overview
from consent.services import ConsentError, consent_decide

from .errors import ApiError
from .serializers import ErrorSerializer
from .views import client_ip, owned_child

BUNDLED = "One decision per purpose: send a single purpose code, not a list."


class DecisionIn(serializers.Serializer):
    purpose = serializers.CharField(max_length=50)
    decision = serializers.ChoiceField(choices=["grant", "withdraw", "object"])
    notice_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class DecisionOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=["active", "inactive"])
    erasure_id = serializers.UUIDField(allow_null=True)
    receipt = serializers.DictField()


def record_decision(*, guardian, child, purpose_code, decision, notice_version, method, request):
    """Shared by the API and the web page: validate, decide, report the outcome."""
    purpose = Purpose.objects.filter(school_id=child.school_id, code=purpose_code).first()
    if purpose is None:
        raise ConsentError("unknown_purpose", "This school has no such purpose.")
    record = consent_decide(
        student=child,
        purpose=purpose,
        guardian=guardian,
        decision=decision,
        notice_version=notice_version,
        method=method,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    loaded = load_for_rule([child.pk])[child.pk]
    now_status = next(s for s in purpose_statuses(loaded) if s.code == purpose.code)
    erasure = ErasureRequest.objects.filter(student=child, status__in=OPEN).first()
    return record, now_status, erasure


class ConsentsView(APIView):
    @extend_schema(responses={200: None, 404: ErrorSerializer})
    def get(self, request, child_id):
        """Each purpose: status, reason, the notice in force, and every decision."""
        child = owned_child(request, child_id)
        return Response({"purposes": consent_overview(child, viewer=request.guardian)})

    @extend_schema(request=DecisionIn, responses={201: DecisionOut, 400: ErrorSerializer})
    def post(self, request, child_id):
        """Grant, withdraw or object for one purpose. Withdrawal takes effect at once."""
        child = owned_child(request, child_id)
        if isinstance(request.data.get("purpose"), list | tuple) or "purposes" in request.data:
            raise ApiError("bundled_consent", BUNDLED, 400)
        data = DecisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            record, now_status, erasure = record_decision(
                guardian=request.guardian,
                child=child,
                purpose_code=data.validated_data["purpose"],
                decision=data.validated_data["decision"],
                notice_version=data.validated_data.get("notice_version"),
                method=Method.API,
                request=request,
            )
        except ConsentError as exc:
            code = 403 if exc.code == "not_responsible" else 400
            raise ApiError(exc.code, exc.detail, code) from exc
        return Response(
            {
                "status": now_status.status,
                "reason": now_status.reason_text,
                "erasure_id": erasure.pk if erasure else None,
                "receipt": record.receipt,
            },
            status=status.HTTP_201_CREATED,
        )


class ReceiptView(APIView):
    @extend_schema(responses={200: None, 404: ErrorSerializer})
    def get(self, request, child_id, receipt_id):
        """A consent receipt (Kantara CR v1.1 + ISO/IEC TS 27560 fields) as JSON."""
        child = owned_child(request, child_id)
        record = get_object_or_404(ConsentDecision, student=child, receipt_id=receipt_id)
        response = Response(record.receipt)
        response["Content-Disposition"] = (
            f'attachment; filename="consent-receipt-{receipt_id}.json"'
        )
        return response
