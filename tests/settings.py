"""Test settings: the product's settings with their own var/ folder (database, broker, media).

Keeping tests out of var/ means a running demo (`make run`) and a test run never share a broker
queue, a media folder or a database file.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "GUARDIAN_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test")
)
# Tests (and the worker and holder processes they start) use generated development secrets.
os.environ.setdefault("GUARDIAN_DEV_SECRETS", "1")

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# SQLite test databases are files, not :memory:, so a real Celery worker process can share them;
# one file per pytest process, so two test runs on one machine never collide.
for _alias, _db in DATABASES.items():  # noqa: F405
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        _db["TEST"] = {"NAME": str(VAR_DIR / f"test-{_alias}-{os.getpid()}.sqlite3")}  # noqa: F405

# The tests' reference holders listen on 127.0.0.1 (biometrics.holder_guard), with SQLite or not.
HOLDER_ALLOW_PRIVATE_ADDRESSES = True
