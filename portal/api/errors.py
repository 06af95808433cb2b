"""Every API error is JSON `{"error": code, "detail": text}` with the right 4xx status."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


class ApiError(exceptions.APIException):
    def __init__(self, code: str, detail: str, status_code: int = 400) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.error_code = code


def error_response(code: str, detail, status_code: int) -> Response:
    return Response({"error": code, "detail": detail}, status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.messages)
    if isinstance(exc, exceptions.APIException) and hasattr(exc, "error_code"):
        # ApiError, and a body the parser refused (portal.api.limits.BodyRejected)
        return error_response(exc.error_code, str(exc.detail), exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for klass, c in CODES.items() if isinstance(exc, klass)), "error")
    detail = exc.detail if isinstance(exc, exceptions.ValidationError) else str(exc.detail)
    response.data = {"error": code, "detail": detail}
    return response


__all__ = ["ApiError", "error_response", "exception_handler", "status"]
