from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation

from consent.languages import codes, supported
from portal.api.limits import PARSED_BODY, BodyRejected, json_object, too_large

UNSUPPORTED = "This endpoint takes a JSON object (Content-Type: application/json)."
UNSUPPORTED_UPLOAD = "This endpoint takes JSON or a multipart/form-data upload."
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# Browsers may use everything they can ask for; Guardian's pages ask for none of it.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
        "xr-spatial-tracking",
    )
)


class NoStoreMiddleware:
    """Pages and API answers about children must not linger in shared or browser caches."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/static/"):
            response.setdefault("Cache-Control", "no-store, private")
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _error(exc: BodyRejected) -> JsonResponse:
    body = {"error": exc.error_code, "detail": str(exc.detail)}
    return JsonResponse(body, status=exc.status_code)


class ApiBodyMiddleware:
    """Every API view refuses, before it runs, a body it has no parser for and a JSON body
    that is not a bounded JSON object (portal.api.limits) — also the views that never read
    their body (e.g. "delete everything"), so bad input is never acted on, and before a large
    body is read at all (413). Uploads (multipart) are bounded by the two views that take
    them, which answer 422 `too_large` as the SPEC says."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, "cls", None)
        parsers = getattr(view_class, "parser_classes", None)
        if parsers is None or request.method not in BODY_METHODS:
            return None  # not an API view, or a method without a body
        length = _content_length(request)
        if length == 0:
            return None
        accepted = {parser.media_type for parser in parsers}
        if request.content_type == "multipart/form-data" and "multipart/form-data" in accepted:
            return None
        if request.content_type != "application/json" or "application/json" not in accepted:
            detail = UNSUPPORTED if accepted == {"application/json"} else UNSUPPORTED_UPLOAD
            return _error(BodyRejected("unsupported_media_type", detail, 415))
        if length > settings.API_JSON_MAX_BYTES:
            return _error(too_large())
        try:
            setattr(request, PARSED_BODY, json_object(request.body))  # the parser takes it
        except BodyRejected as exc:
            return _error(exc)
        return None


BAD_LANGUAGE = "lang must be one of this portal's languages: %s."


class LanguageMiddleware:
    """Who decides the language, after LocaleMiddleware (cookie, then Accept-Language) and the
    account are known:

    - the API: `?lang=` beats `Accept-Language` (an unknown one is a 400 `bad_language`);
    - the pages: a guardian who chose a language (the chooser on every page stores it) reads
      it on every device; one who has not follows their browser.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = self._chosen(request)
        if chosen is None:
            body = {"error": "bad_language", "detail": BAD_LANGUAGE % ", ".join(codes())}
            return JsonResponse(body, status=400)
        if chosen:
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        return self.get_response(request)

    @staticmethod
    def _chosen(request: HttpRequest) -> str | None:
        """The language to use instead of LocaleMiddleware's ("" keeps it; None: refused)."""
        if request.path.startswith("/api/"):
            asked = request.GET.get("lang")
            if asked is None:
                return ""
            return supported(asked) or None
        from portal.parent import guardian_for_user  # noqa: PLC0415 - loads the models

        guardian = guardian_for_user(getattr(request, "user", None))
        return guardian.language if guardian is not None else ""
