from rest_framework.views import APIView

from portal.parent import NotResponsible

from .errors import ApiError


class ParentView(APIView):
    """A parent endpoint: the use cases' NotResponsible is a 403 `not_responsible`."""

    def handle_exception(self, exc):
        if isinstance(exc, NotResponsible):
            exc = ApiError(exc.code, exc.detail, 403)
        return super().handle_exception(exc)
