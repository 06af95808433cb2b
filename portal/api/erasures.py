"""Parent erasure endpoints (docs/erasure.md): delete everything, follow it, keep the receipt."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from biometrics.models import ErasureRequest, ErasureStatus
from biometrics.receipts import public_key_b64
from portal.auth import client_ip
from portal.parent import (
    ErasureNotFinished,
    child_get,
    erasure_ask,
    erasure_get,
    erasure_receipt_get,
)

from .errors import ApiError
from .parent_view import ParentView
from .serializers import ErrorSerializer


class StepOut(serializers.Serializer):
    system = serializers.CharField()
    status = serializers.ChoiceField(choices=ErasureStatus.values)
    attempts = serializers.IntegerField()
    items_erased = serializers.IntegerField()
    verified_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class ErasureOut(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ErasureStatus.values)
    requested_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    steps = StepOut(many=True)
    receipt_url = serializers.CharField(allow_null=True)


def erasure_document(erasure: ErasureRequest, request) -> dict:
    done = erasure.status == ErasureStatus.VERIFIED
    return {
        "id": erasure.pk,
        "status": erasure.status,
        "requested_at": erasure.requested_at,
        "completed_at": erasure.completed_at,
        "steps": [
            {
                "system": s.system,
                "status": s.status,
                "attempts": s.attempts,
                "items_erased": s.items_erased,
                "verified_at": s.verified_at,
                "last_error": s.last_error,
            }
            for s in erasure.steps.all()
        ],
        "receipt_url": request.build_absolute_uri(reverse("api-erasure-receipt", args=[erasure.pk]))
        if done
        else None,
    }


class ChildErasuresView(ParentView):
    @extend_schema(request=None, responses={202: None, 403: ErrorSerializer, 404: ErrorSerializer})
    def post(self, request, child_id):
        """Delete everything held about the child, everywhere. Stops every purpose first."""
        child = child_get(guardian=request.guardian, child_id=child_id)
        erasure = erasure_ask(
            child=child,
            guardian=request.guardian,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return Response(
            {"id": erasure.pk, "status": erasure.status}, status=status.HTTP_202_ACCEPTED
        )


class ErasureView(ParentView):
    @extend_schema(responses={200: ErasureOut, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request, erasure_id):
        """The erasure's progress, system by system."""
        erasure = erasure_get(guardian=request.guardian, erasure_id=erasure_id)
        return Response(ErasureOut(erasure_document(erasure, request)).data)


class ErasureReceiptView(ParentView):
    @extend_schema(responses={200: None, 404: ErrorSerializer, 409: ErrorSerializer})
    def get(self, request, erasure_id):
        """The signed deletion receipt (Ed25519; the public key is in it and on the
        school's transparency page)."""
        try:
            receipt = erasure_receipt_get(guardian=request.guardian, erasure_id=erasure_id)
        except ErasureNotFinished:
            raise ApiError("not_ready", "The erasure is not finished yet.", 409) from None
        response = Response(receipt.body)
        response["Content-Disposition"] = receipt.content_disposition
        return response


class PublicKeyView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: None})
    def get(self, request):
        """The Ed25519 public key that verifies deletion receipts."""
        return Response({"algorithm": "Ed25519", "public_key": public_key_b64()})
