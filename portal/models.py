from django.db import models

from consent.models import Guardian, School


class MagicLink(models.Model):
    """A one-time sign-in link. Only the token's SHA-256 is stored."""

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="magic_links")
    token_hash = models.CharField(max_length=64, unique=True)
    next_url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)


class SignInAttempt(models.Model):
    """Every magic-link request, known email or not, for rate limiting without enumeration."""

    email_hash = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(db_index=True)


class ApiToken(models.Model):
    """A parent's bearer token for the JSON API. Only the token's SHA-256 is stored."""

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)


class ApiKey(models.Model):
    """A school-scoped key for capture stations, gate cameras and roster integrations."""

    SCOPES = ("roster", "enrol", "identify")

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name or self.prefix} ({', '.join(self.scopes)})"
