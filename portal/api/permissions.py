from rest_framework.permissions import BasePermission

from consent.models import Guardian
from portal.child_auth import student_for_user
from portal.parent import guardian_for_user


def guardian_of(request) -> Guardian | None:
    """The signed-in guardian, from a bearer token or the web session (never a staff account)."""
    return guardian_for_user(getattr(request, "user", None))


class IsGuardian(BasePermission):
    message = "Sign in as a parent or guardian."

    def has_permission(self, request, view) -> bool:
        guardian = guardian_of(request)
        request.guardian = guardian
        return guardian is not None


class IsChild(BasePermission):
    """A child signed in with their own link (a bearer token or the session), while at or
    above the school's competence age: request.child is that child, and only that child."""

    message = "Sign in with your own link from the school."

    def has_permission(self, request, view) -> bool:
        child = student_for_user(getattr(request, "user", None))
        request.child = child
        return child is not None


class HasApiKeyScope(BasePermission):
    """The view's `required_scope` must be among the API key's scopes."""

    message = "This API key does not have the scope this call needs."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        return key is not None and getattr(view, "required_scope", None) in getattr(
            key, "scopes", []
        )
