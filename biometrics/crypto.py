"""Envelope encryption of photos and templates (SPEC §4, crypto-shredding).

Each child has a random 256-bit data key. It is stored only wrapped (AES-256-GCM) by the
key-encryption key from the environment (`GUARDIAN_KEK`). Photo and template bytes are sealed
with AES-256-GCM under the data key, bound by associated data to the record they belong to, so a
ciphertext moved to another row or child fails to open. Destroying the wrapped key makes every
copy of that child's ciphertext — in backups, replicas or stray files — unreadable.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from consent.models import Student

from .models import ChildKey

MAGIC = b"GV1"
NONCE_BYTES = 12


class KeyDestroyed(Exception):
    """The child's data key has been destroyed: the data is crypto-shredded."""


class DecryptionFailed(Exception):
    pass


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        raise DecryptionFailed("not a Guardian ciphertext")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise DecryptionFailed("ciphertext or key does not match") from exc


def _kek() -> bytes:
    kek = settings.GUARDIAN_KEK
    if len(kek) != 32:
        raise ValueError("GUARDIAN_KEK must be 32 bytes, base64-encoded")
    return kek


def _key_aad(student_id) -> bytes:
    return b"child-key:" + str(student_id).encode()


def child_key_get_or_create(student: Student) -> bytes:
    """The child's plaintext data key, creating it on first use (in the key store)."""
    record = ChildKey.objects.filter(student_id=student.pk).first()
    if record is None:
        data_key = AESGCM.generate_key(bit_length=256)
        with transaction.atomic(using="keys"):
            record, created = ChildKey.objects.get_or_create(
                student_id=student.pk,
                defaults={"wrapped_key": _seal(_kek(), data_key, _key_aad(student.pk))},
            )
        if created:
            return data_key
    if record.wrapped_key is None:
        raise KeyDestroyed(str(student.pk))
    return _open(_kek(), record.wrapped_key, _key_aad(student.pk))


def child_key_for_reading(student_id) -> bytes:
    """The data key for decrypting; raises KeyDestroyed after crypto-shredding."""
    record = ChildKey.objects.filter(student_id=student_id).first()
    if record is None or record.wrapped_key is None:
        raise KeyDestroyed(str(student_id))
    return _open(_kek(), record.wrapped_key, _key_aad(student_id))


def child_key_destroy(student: Student) -> bool:
    """Crypto-shred: overwrite the wrapped key. Returns whether a key was destroyed now."""
    return bool(
        ChildKey.objects.filter(student_id=student.pk, wrapped_key__isnull=False).update(
            wrapped_key=None, destroyed_at=timezone.now()
        )
    )


def encrypt_for_child(student: Student, plaintext: bytes, *, context: str) -> bytes:
    return _seal(child_key_get_or_create(student), plaintext, context.encode())


def decrypt_for_child(student_id, blob: bytes, *, context: str, key: bytes | None = None) -> bytes:
    return _open(key or child_key_for_reading(student_id), blob, context.encode())
