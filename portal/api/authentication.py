from rest_framework import authentication, exceptions

from portal.auth import api_key_lookup, api_token_guardian


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/auth/token/. Authenticates a guardian."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        token = header[len(self.keyword) + 1 :].strip()
        guardian = api_token_guardian(token) if token else None
        if guardian is None:
            raise exceptions.AuthenticationFailed("The token is invalid or has expired.")
        return guardian.user, guardian

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>` for school systems. request.auth is the ApiKey."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        key = api_key_lookup(header[len(self.keyword) + 1 :].strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or revoked.")
        return None, key

    def authenticate_header(self, request) -> str:
        return self.keyword
