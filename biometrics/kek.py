"""Small secrets sealed under the key-encryption key (`GUARDIAN_KEK`): the holders' HMAC
secrets, which sign requests that read and erase children's templates.

Stored as text, `gk1:` + base64(nonce + AES-256-GCM ciphertext), bound by associated data to
what the secret is for (`context`), so a sealed value copied to another row fails to open. Kept
apart from `crypto` (the children's data keys), which the models cannot import.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

PREFIX = "gk1:"
NONCE_BYTES = 12


class SealedSecretUnreadable(ValueError):
    """Not a sealed secret, or sealed under another key or for another use."""


def _kek() -> bytes:
    kek = settings.GUARDIAN_KEK
    if len(kek) != 32:
        raise ValueError("GUARDIAN_KEK must be 32 bytes, base64-encoded")
    return kek


def kek_seal(secret: str, *, context: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_kek()).encrypt(nonce, secret.encode(), context.encode())
    return PREFIX + base64.b64encode(nonce + sealed).decode()


def kek_open(stored: str, *, context: str) -> str:
    if not stored.startswith(PREFIX):
        raise SealedSecretUnreadable("not a sealed secret")
    try:
        blob = base64.b64decode(stored[len(PREFIX) :], validate=True)
        plain = AESGCM(_kek()).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
    except (binascii.Error, InvalidTag, ValueError) as exc:
        raise SealedSecretUnreadable("the sealed secret does not open with this key") from exc
    return plain.decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
