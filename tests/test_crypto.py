"""Photos and templates are encrypted at rest under a per-child key (AES-256-GCM), and
destroying that key makes every surviving copy unreadable (crypto-shredding)."""

import shutil
import sqlite3

import pytest
from django.db import connection

from biometrics import demo_photos
from biometrics.crypto import (
    DecryptionFailed,
    KeyDestroyed,
    child_key_destroy,
    decrypt_for_child,
    encrypt_for_child,
)
from biometrics.models import ChildKey, FaceTemplate, Photo
from biometrics.selectors import photo_bytes, template_embedding


def raw_bytes_of_database() -> bytes:
    """Every value of every row of every table, as the database returns them."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes):
                        chunks.append(bytes(value))
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\x00".join(chunks)


def test_database_holds_no_plaintext_embedding_or_photo(enrolled_child_a, media_dir):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    embedding = template_embedding(template)
    raw = raw_bytes_of_database()
    assert embedding.astype("<f8").tobytes() not in raw
    assert embedding.astype("<f4").tobytes() not in raw
    assert f"{embedding[0]:.6f}".encode() not in raw  # not as text either
    photo = demo_photos.grace_hopper()
    assert photo[100:164] not in raw
    # the photo file on disk is ciphertext too
    (stored,) = list(media_dir.rglob("*.gv1"))
    blob = stored.read_bytes()
    assert photo[100:164] not in blob and not blob.startswith(b"\xff\xd8")
    assert photo_bytes(Photo.objects.get(student=enrolled_child_a)) == photo


def test_each_child_has_its_own_key(enrolled_child_a, child_b):
    blob = encrypt_for_child(child_b, b"secret", context="x")
    with pytest.raises(DecryptionFailed):
        decrypt_for_child(enrolled_child_a.pk, blob, context="x")
    assert decrypt_for_child(child_b.pk, blob, context="x") == b"secret"
    assert ChildKey.objects.count() == 2
    assert len(set(ChildKey.objects.values_list("wrapped_key", flat=True))) == 2


def test_ciphertext_is_bound_to_its_record(enrolled_child_a):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    with pytest.raises(DecryptionFailed):
        decrypt_for_child(enrolled_child_a.pk, template.ciphertext, context="template:other")


def test_tampered_ciphertext_is_refused(enrolled_child_a):
    template = FaceTemplate.objects.get(student=enrolled_child_a)
    blob = bytearray(bytes(template.ciphertext))
    blob[-1] ^= 1
    template.ciphertext = bytes(blob)
    with pytest.raises(DecryptionFailed):
        template_embedding(template)


def test_wrong_kek_cannot_unwrap(enrolled_child_a, settings):
    settings.GUARDIAN_KEK = b"\x01" * 32
    with pytest.raises(DecryptionFailed):
        template_embedding(FaceTemplate.objects.get(student=enrolled_child_a))


def test_main_database_holds_no_keys(enrolled_child_a):
    """Keys live in the key store only: a backup of the main database has ciphertext, no keys."""
    assert "biometrics_childkey" not in connection.introspection.table_names()
    assert ChildKey.objects.filter(student_id=enrolled_child_a.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_destroying_the_key_shreds_a_backup_copy(tmp_path, enrolled_child_a, media_dir):
    """Copy the database and the photo files, destroy the child's key, then try the copies."""
    child = enrolled_child_a
    template = FaceTemplate.objects.get(student=child)
    photo = Photo.objects.get(student=child)
    assert len(template_embedding(template)) == 128  # readable before
    backup = tmp_path / "backup.sqlite3"
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(backup)])
        with sqlite3.connect(backup) as copy:
            ((ciphertext,),) = copy.execute(
                "SELECT ciphertext FROM biometrics_facetemplate WHERE id = ?", [template.pk.hex]
            ).fetchall()
    else:  # the same idea on PostgreSQL: keep the ciphertext bytes a backup would hold
        ciphertext = bytes(FaceTemplate.objects.get(pk=template.pk).ciphertext)
    media_backup = tmp_path / "media-backup"
    shutil.copytree(media_dir, media_backup)

    assert child_key_destroy(child)
    assert not child_key_destroy(child)  # idempotent

    with pytest.raises(KeyDestroyed):
        decrypt_for_child(child.pk, ciphertext, context=f"template:{template.pk}")
    photo_blob = (media_backup / photo.storage_name).read_bytes()
    with pytest.raises(KeyDestroyed):
        decrypt_for_child(child.pk, photo_blob, context=f"photo:{photo.pk}")
    with pytest.raises(KeyDestroyed):
        photo_bytes(photo)
    assert ChildKey.objects.get(student_id=child.pk).wrapped_key is None
