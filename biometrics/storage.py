"""Encrypted photo files in media storage. Names carry no personal data, only the photo's uuid."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from consent.models import Student

from .crypto import decrypt_for_child, encrypt_for_child


def photo_context(photo_id) -> str:
    return f"photo:{photo_id}"


def subject_folder(subject_id) -> str:
    """All of a child's photo files live under one pseudonymous folder, so erasure and its
    verification need no database rows: delete the folder, list it, expect nothing."""
    return f"photos/{subject_id}"


def photo_file_write(student: Student, photo_id, data: bytes) -> str:
    name = f"{subject_folder(student.subject_id)}/{photo_id}.gv1"
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


def subject_files(subject_id) -> list[str]:
    folder = subject_folder(subject_id)
    if not default_storage.exists(folder):
        return []
    _, files = default_storage.listdir(folder)
    return [f"{folder}/{name}" for name in files]


def subject_files_delete(subject_id) -> int:
    names = subject_files(subject_id)
    for name in names:
        default_storage.delete(name)
    return len(names)
