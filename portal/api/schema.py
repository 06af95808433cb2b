"""How the OpenAPI schema describes Guardian's two credentials (drf-spectacular extensions).

Imported once at start (PortalConfig.ready) so that the schema declares a security scheme for
each authentication class: `Authorization: Bearer <token>` for parents, `Authorization:
Api-Key <key>` for school systems.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.BearerTokenAuthentication"
    match_subclasses = True
    name = "Bearer"

    def get_security_definition(self, auto_schema):
        scheme = build_bearer_security_scheme_object("Authorization", "Bearer")
        scheme["description"] = (
            "A parent's token from POST /api/v1/auth/token/ (exchanged for a sign-in token)."
        )
        return scheme


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.ApiKeyAuthentication"
    match_subclasses = True
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "A school system's key, sent as `Authorization: Api-Key <key>` "
                "(python manage.py create_api_key)."
            ),
        }
