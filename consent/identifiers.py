"""Identifiers kept as evidence without being readable: salted hashes of IPs and user agents."""

import hashlib

from django.conf import settings


def hash_identifier(value: str) -> str:
    """Salted SHA-256 of an IP address or user agent: provable later, not readable now."""
    if not value:
        return ""
    salted = f"{settings.GUARDIAN_HASH_SALT}:{value}".encode()
    return hashlib.sha256(salted).hexdigest()
