"""Envelope encryption of photos and templates (docs/erasure.md, "Crypto-shredding").

Each child has a random 256-bit data key. It is stored only wrapped (AES-256-GCM) by the
key-encryption key from the environment (`GUARDIAN_KEK`). Photo and template bytes are sealed
with AES-256-GCM under the data key, bound by associated data to the record they belong to, so a
ciphertext moved to another row or child fails to open. Destroying the wrapped key makes every
copy of that child's ciphertext — in backups, replicas or stray files — unreadable.
"""

from __future__ import annotations

import hashlib
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from consent.models import Student

from .models import ChildKey

MAGIC = b"GV1"
NONCE_BYTES = 12


class KeyDestroyed(Exception):
    """The child's data key has been destroyed: the data is crypto-shredded."""


class DecryptionFailed(Exception):
    pass


class ShredFailed(Exception):
    """The key store cannot promise that a destroyed key's old bytes are gone from its files."""


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, stored: bytes | memoryview | None, aad: bytes) -> bytes:
    blob = bytes(stored or b"")  # a BinaryField reads back as memoryview on PostgreSQL
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


def child_key_renew(student: Student) -> bytes:
    """A new data key for a child whose key was destroyed by a verified erasure (or who has
    none); a live key is returned as it is. Race-safe: the destroyed row is replaced by a
    compare-and-set, so of two callers one makes the key and the other reads it.

    Only for a child whose erasure is over (`biometrics.identity.child_identity_renew` checks):
    during an erasure a new key would hold data the erasure no longer reaches.
    """
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = _seal(_kek(), data_key, _key_aad(student.pk))
    with transaction.atomic(using="keys"):
        replaced = ChildKey.objects.filter(student_id=student.pk, wrapped_key__isnull=True).update(
            wrapped_key=wrapped, created_at=timezone.now(), destroyed_at=None
        )
        if replaced:
            return data_key
        _, created = ChildKey.objects.get_or_create(
            student_id=student.pk, defaults={"wrapped_key": wrapped}
        )
    return data_key if created else child_key_for_reading(student.pk)


def child_key_for_reading(student_id) -> bytes:
    """The data key for decrypting; raises KeyDestroyed after crypto-shredding."""
    record = ChildKey.objects.filter(student_id=student_id).first()
    if record is None or record.wrapped_key is None:
        raise KeyDestroyed(str(student_id))
    return _open(_kek(), record.wrapped_key, _key_aad(student_id))


def child_keys_for_reading(student_ids, batch: int = 2000) -> dict:
    """Data keys of many children at once (destroyed ones left out), in a few queries."""
    ids = list(dict.fromkeys(student_ids))
    keys = {}
    for start in range(0, len(ids), batch):
        rows = ChildKey.objects.filter(
            student_id__in=ids[start : start + batch], wrapped_key__isnull=False
        ).values_list("student_id", "wrapped_key")
        for student_id, wrapped in rows:
            keys[student_id] = _open(_kek(), wrapped, _key_aad(student_id))
    return keys


def child_key_destroy(student: Student) -> bool:
    """Crypto-shred one child's key. Returns whether a key was destroyed now."""
    return bool(child_keys_destroy([student.pk]))


def child_keys_destroy(student_ids) -> set:
    """Crypto-shred many children's keys in one statement. Returns whose were destroyed now.

    Then make sure the old bytes are gone from the key store's files, not only unreachable
    (`_shred_old_versions`); raises ShredFailed when that cannot be promised (the keys are
    destroyed all the same: a retry finds none left and tries the files again).
    """
    live = ChildKey.objects.filter(student_id__in=list(student_ids), wrapped_key__isnull=False)
    _secure_delete_on(live.db)
    with transaction.atomic(using=live.db):
        ids = set(live.select_for_update().values_list("student_id", flat=True))
        ChildKey.objects.filter(student_id__in=ids).update(
            wrapped_key=None, destroyed_at=timezone.now()
        )
        destroyed_by = _transaction_id(live.db)
    _shred_old_versions(live.db, destroyed_by)
    return ids


def _transaction_id(using: str) -> str | None:
    """PostgreSQL: this transaction's id (the UPDATE's; assigned now if it changed no row);
    None elsewhere."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return None
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text")
        return cursor.fetchone()[0]


# What keeps a row version the transaction `%s` replaced: a session of this database whose
# snapshot is that old (backend_xmin), or a transaction of any database that began before it
# and still runs (backend_xid): VACUUM FULL's own snapshot starts at the oldest running one.
_OLD_SNAPSHOTS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE pid <> pg_backend_pid()
      AND ((datname = current_database() AND backend_xmin IS NOT NULL
            AND age(backend_xmin) >= age(xid(%s::xid8)))
        OR (backend_xid IS NOT NULL AND age(backend_xid) >= age(xid(%s::xid8))))
"""
#: How long a destruction waits for the transactions running when it committed to end.
SNAPSHOT_WAIT_SECONDS = 2.0


def _secure_delete_on(using: str) -> None:
    """SQLite overwrites freed cell content with zeros only with `secure_delete` on; a build's
    default is not a promise, so it is set on this connection, and checked, before a key goes."""
    conn = connections[using]
    if conn.vendor != "sqlite":
        return
    with conn.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA secure_delete")
        if cursor.fetchone()[0] != 1:
            raise ShredFailed("the key store refuses secure_delete")


def _shred_old_versions(using: str, destroyed_by: str | None = None) -> None:
    """No copy of a destroyed key may linger in the key store's files.

    SQLite (WAL): the zeroed page is written to the write-ahead log; until a checkpoint copies
    it back, the main file still holds the old page: checkpoint now, and fail if it could not
    complete. PostgreSQL: an UPDATE leaves the old row version, key included, in the table's
    pages until it is vacuumed, and a plain VACUUM frees it without overwriting it: VACUUM FULL
    rewrites the (small) key table with live rows only -- but it copies the old versions a
    running transaction may still see (one of any database that began before the destruction
    committed: VACUUM FULL's own snapshot starts at the oldest). So it waits
    (`SNAPSHOT_WAIT_SECONDS`) for the transactions that might see the destroyed version to end;
    if one still runs, it vacuums all the same and fails (ShredFailed: the erasure step is
    retried, and the retry vacuums again). Neither runs inside a transaction (a test's, say);
    the next destruction outside one covers it.
    """
    conn = connections[using]
    if conn.in_atomic_block:
        return
    with conn.cursor() as cursor:
        if conn.vendor == "sqlite":
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                return
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _log, _done = cursor.fetchone()
            if busy:
                raise ShredFailed("the key store's write-ahead log could not be checkpointed yet")
        elif conn.vendor == "postgresql":
            seen_by = _sessions_that_may_see(cursor, destroyed_by)
            cursor.execute(f"VACUUM FULL {ChildKey._meta.db_table}")
            if seen_by:
                raise ShredFailed(
                    f"{seen_by} database transaction(s) that began before the keys were "
                    "destroyed still run, so their old row versions were kept; vacuumed again "
                    "on retry"
                )


def _sessions_that_may_see(cursor, destroyed_by: str | None) -> int:
    """How many other sessions may still see the key rows as `destroyed_by` found them, after
    waiting up to SNAPSHOT_WAIT_SECONDS for them to end. A retry that found no key left to
    destroy has a transaction of its own all the same, later than the one that destroyed
    them: a session that may see their old versions is older than it too."""
    if destroyed_by is None:
        return 0
    deadline = time.monotonic() + SNAPSHOT_WAIT_SECONDS
    while True:
        cursor.execute(_OLD_SNAPSHOTS, [destroyed_by, destroyed_by])
        (count,) = cursor.fetchone()
        if not count or time.monotonic() >= deadline:
            return count
        time.sleep(0.05)


def encrypt_for_child(student: Student, plaintext: bytes, *, context: str) -> bytes:
    return _seal(child_key_get_or_create(student), plaintext, context.encode())


def decrypt_for_child(
    student_id, blob: bytes | memoryview, *, context: str, key: bytes | None = None
) -> bytes:
    return _open(key or child_key_for_reading(student_id), blob, context.encode())


# --- streams (export packages) ----------------------------------------------------------------
# A file is sealed in 1 MiB chunks, each AES-256-GCM with its own nonce; the chunk's index and
# a "last chunk" flag are bound as associated data, so chunks cannot be reordered, dropped or
# the file truncated without detection. Memory stays flat whatever the file's size.

STREAM_MAGIC = b"GVS1"
STREAM_CHUNK = 1024 * 1024


class SealingWriter:
    """A write-only file object that encrypts what is written, chunk by chunk, into `dst`.

    Nothing is ever held in plaintext beyond one chunk; nothing plaintext touches the disk.
    Also computes the SHA-256 and size of the plaintext.
    """

    def __init__(self, student: Student, dst, *, context: str) -> None:
        self._key = AESGCM(child_key_get_or_create(student))
        self._dst = dst
        self._context = context
        self._buffer = bytearray()
        self._pending: bytes | None = None
        self._index = 0
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False
        dst.write(STREAM_MAGIC)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def write(self, data) -> int:
        data = bytes(data)
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= STREAM_CHUNK:
            self._push(bytes(self._buffer[:STREAM_CHUNK]))
            del self._buffer[:STREAM_CHUNK]
        return len(data)

    def _push(self, chunk: bytes) -> None:
        # A chunk is sealed only when the next one exists, so the last carries the last flag.
        if self._pending is not None:
            self._seal(self._pending, last=False)
        self._pending = chunk

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = os.urandom(NONCE_BYTES)
        aad = f"{self._context}:{self._index}:{int(last)}".encode()
        sealed = self._key.encrypt(nonce, chunk, aad)
        self._dst.write(nonce + len(sealed).to_bytes(4, "big") + sealed)
        self._index += 1

    def close(self) -> None:
        if self.closed:
            return
        if self._buffer:
            self._push(bytes(self._buffer))
            self._buffer.clear()
        self._seal(self._pending or b"", last=True)
        self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def seal_stream(student: Student, src, dst, *, context: str) -> SealingWriter:
    """Encrypt file-like `src` into `dst` under the child's key."""
    writer = SealingWriter(student, dst, context=context)
    while chunk := src.read(STREAM_CHUNK):
        writer.write(chunk)
    writer.close()
    return writer


def open_stream(student_id, src, *, context: str):
    """Yield the plaintext chunks of a sealed stream; raise DecryptionFailed on any tampering."""
    key = AESGCM(child_key_for_reading(student_id))
    if src.read(len(STREAM_MAGIC)) != STREAM_MAGIC:
        raise DecryptionFailed("not a Guardian stream")
    index = 0
    while True:
        header = src.read(NONCE_BYTES + 4)
        if len(header) < NONCE_BYTES + 4:
            raise DecryptionFailed("stream truncated")
        nonce, length = header[:NONCE_BYTES], int.from_bytes(header[NONCE_BYTES:], "big")
        sealed = src.read(length)
        for last in (0, 1):
            try:
                chunk = key.decrypt(nonce, sealed, f"{context}:{index}:{last}".encode())
            except InvalidTag:
                continue
            yield chunk
            if last:
                return
            break
        else:
            raise DecryptionFailed("stream chunk does not match")
        index += 1
