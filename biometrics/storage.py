"""Encrypted photo files in media storage. Names carry no personal data, only the photo's uuid."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from consent.models import Student

from .crypto import decrypt_for_child, encrypt_for_child


def photo_context(photo_id) -> str:
    return f"photo:{photo_id}"


def photo_file_write(student: Student, photo_id, data: bytes) -> str:
    name = f"photos/{photo_id}.gv1"
    blob = encrypt_for_child(student, data, context=photo_context(photo_id))
    # Overwrite semantics: the name is derived from the uuid, so a retry writes the same file.
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(blob))


def photo_file_read(student_id, photo_id, storage_name: str, key: bytes | None = None) -> bytes:
    with default_storage.open(storage_name, "rb") as fh:
        blob = fh.read()
    return decrypt_for_child(student_id, blob, context=photo_context(photo_id), key=key)


def photo_file_delete(storage_name: str) -> bool:
    if storage_name and default_storage.exists(storage_name):
        default_storage.delete(storage_name)
        return True
    return False
