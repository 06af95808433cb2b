from knox.auth import TokenAuthentication
from rest_framework import authentication, exceptions

from portal.auth import api_key_lookup

TOKEN_INVALID = "The token is invalid, revoked or expired."  # noqa: S105 - a message


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/auth/token/: a guardian's or a child's
    django-rest-knox token (request.auth is the token row, so it can be revoked). A token that
    is not text, or belongs to any other account (staff), is refused like a wrong one. Which
    endpoints each may use is the permissions' business (IsGuardian, IsChild)."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(TOKEN_INVALID) from None
        try:
            user, row = super().authenticate_credentials(token)
        except exceptions.AuthenticationFailed:
            raise exceptions.AuthenticationFailed(TOKEN_INVALID) from None
        family = hasattr(user, "guardian") or hasattr(user, "child_account")
        if user.is_staff or user.is_superuser or not family:
            raise exceptions.AuthenticationFailed(TOKEN_INVALID)
        return user, row


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>` for school systems. request.auth is the ApiKey."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        key = api_key_lookup(header[len(self.keyword) + 1 :].strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, expired or revoked.")
        return None, key

    def authenticate_header(self, request) -> str:
        return self.keyword
