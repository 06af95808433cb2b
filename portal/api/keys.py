"""The portal's signing-key history (public): every key that has signed consent and deletion
receipts, with the period it signed in, so a receipt still verifies after a rotation."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from consent.signing import ALGORITHM, CANONICAL_FORM, key_history


class KeyOut(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    public_key = serializers.CharField(help_text="The 32 raw bytes of the Ed25519 key, base64")
    valid_from = serializers.DateTimeField(allow_null=True)
    valid_until = serializers.DateTimeField(allow_null=True, help_text="null: signs today")
    status = serializers.ChoiceField(choices=["current", "retired"])


class KeyHistoryOut(serializers.Serializer):
    algorithm = serializers.CharField()
    signed_bytes = serializers.CharField()
    keys = KeyOut(many=True)
    how_to_verify = serializers.URLField()


class KeyHistoryView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: KeyHistoryOut})
    def get(self, request):
        """Every key that signed receipts: a receipt's `keyId` (consent) or `key_id`
        (deletion) names one; it verifies only if dated in that key's period."""
        return Response(
            {
                "algorithm": ALGORITHM,
                "signed_bytes": CANONICAL_FORM,
                "keys": [key.as_json() for key in key_history()],
                "how_to_verify": request.build_absolute_uri(reverse("portal:receipt-verify")),
            }
        )
