"""Settings for Guardian.

Everything comes from the environment (django-environ). With nothing set, the embedded default
runs: SQLite in WAL mode under ``var/``, Celery over kombu's filesystem transport, generated
development secrets (when GUARDIAN_DEV_SECRETS or DEBUG says so; see env_secret).
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
Any secret may instead be read from a file named by ``<NAME>_FILE``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# The embedded default's files. Nothing is created here: a generated secret makes the folder
# when it is first written (env_secret), and PortalConfig.ready() makes the folders that the
# SQLite databases, the filesystem broker and static files need.
VAR_DIR = Path(env.str("GUARDIAN_VAR_DIR", default=str(BASE_DIR / "var")))


DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Development secrets are generated (once, under var/, shared by every process of the machine)
# only where asked for: `make run`, the tests and the benchmarks set GUARDIAN_DEV_SECRETS=1,
# and DEBUG implies it. Anywhere else every secret must be given: a missing one stops the
# process, rather than each host making up its own (hashes, sessions and signatures would then
# differ from host to host).
DEV_SECRETS = env.bool("GUARDIAN_DEV_SECRETS", default=DEBUG)


def env_secret(name: str, *, dev_file: str, generate: Callable[[], str], needed=True) -> str:
    """Read a secret from NAME, or from the file NAME_FILE names; else, with DEV_SECRETS, a
    generated development value (written once under var/ so that web, worker and beat share
    it). A secret that is not `needed` (the demo holder's) is "" when not given."""
    if value := os.environ.get(name):
        return value
    if path := os.environ.get(f"{name}_FILE"):
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names {path}, which cannot be read") from exc
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE names {path}, which is empty")
        return value
    if not DEV_SECRETS:
        if not needed:
            return ""
        raise ImproperlyConfigured(
            f"Set {name} (or {name}_FILE, the path of a file holding it). With DJANGO_DEBUG off "
            f"Guardian generates no secrets; GUARDIAN_DEV_SECRETS=1 allows development ones."
        )
    target = VAR_DIR / dev_file
    if not target.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when several processes start at once, exactly one writes the value.
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(generate())
    return target.read_text().strip()


def env_key32(name: str, *, dev_file: str) -> bytes:
    """A 32-byte key given in base64 (see env_secret)."""
    text = env_secret(
        name, dev_file=dev_file, generate=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ImproperlyConfigured(f"{name} is not base64") from exc
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must be 32 bytes (base64), not {len(key)}")
    return key


SECRET_KEY = env_secret(
    "DJANGO_SECRET_KEY", dev_file="dev-secret-key", generate=lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

# Key-encryption key (32 bytes, base64) that wraps every child's data key.
GUARDIAN_KEK = env_key32("GUARDIAN_KEK", dev_file="dev-kek.b64")
# Ed25519 seed (32 bytes, base64) that signs consent and deletion receipts: the current key.
GUARDIAN_SIGNING_KEY = env_key32("GUARDIAN_SIGNING_KEY", dev_file="dev-signing-key.b64")
# When the current key started signing (ISO 8601); by default, when the newest retired key
# stopped. Published in the key history (/api/v1/keys/).
GUARDIAN_SIGNING_KEY_VALID_FROM = env.str("GUARDIAN_SIGNING_KEY_VALID_FROM", default="")
# Keys that signed before a rotation, public halves only, so their receipts still verify: JSON
# [{"public_key": "<base64 of the 32 raw bytes>", "valid_from": "<ISO 8601 or null>",
#   "valid_until": "<ISO 8601>"}]. To rotate: copy the current key's entry from
# /api/v1/keys/ here with `valid_until` set to now, then set a new GUARDIAN_SIGNING_KEY.
GUARDIAN_SIGNING_KEYS_RETIRED = env.json("GUARDIAN_SIGNING_KEYS_RETIRED", default=[])
# Salt for hashing IP addresses and user agents in consent records and audit events.
GUARDIAN_HASH_SALT = env_secret(
    "GUARDIAN_HASH_SALT", dev_file="dev-hash-salt", generate=lambda: secrets.token_hex(16)
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_celery_beat",
    "axes",
    "consent",
    "biometrics",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the account is known: the API's ?lang=, a guardian's chosen language on pages.
    "portal.middleware.LanguageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.NoStoreMiddleware",
    "portal.middleware.ApiBodyMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'guardian.sqlite3'}")}
# The key store: children's wrapped data keys live in their own database, never in the main
# one, so a backup or replica of the main database holds ciphertext without keys. Destroying a
# child's key here is what crypto-shreds every copy of that child's photos and templates.
# Back it up on a short rotation (or not at all, accepting loss of keys = loss of data).
_default_keystore = f"sqlite:///{VAR_DIR / 'keys.sqlite3'}"
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" and "DATABASE_URL" in os.environ:
    _default_keystore = (
        os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        + "/"
        + (DATABASES["default"]["NAME"] + "_keys")
    )
DATABASES["keys"] = env.db("KEYSTORE_DATABASE_URL", default=_default_keystore)
for _alias, _db in DATABASES.items():
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        _db["OPTIONS"] = {
            # IMMEDIATE takes the write lock when a transaction begins, so two writers never
            # both read the audit chain's head and fork it; WAL lets readers run alongside.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
        _db["CONN_HEALTH_CHECKS"] = True
        if _db["ENGINE"] == "django.db.backends.postgresql":
            # Django's, with a health check that asks the socket, not the server
            # (portal/postgresql/base.py).
            _db["ENGINE"] = "portal.postgresql"
DATABASE_ROUTERS = ["portal.dbrouter.KeyStoreRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "portal:sign-in"

# Staff sign-in (the admin's password form) is throttled by django-axes: after
# AXES_FAILURE_LIMIT wrong passwords for one username from one IP address, that pair is locked
# for AXES_COOLOFF_TIME (each further try while locked starts the wait again). The lock is per
# username *and* address, so a stranger elsewhere cannot lock a staff member out; unlock early
# with `manage.py axes_reset_username NAME`. Parents sign in by link (portal.auth), not here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client's address as the parent sign-in limits see it (TRUSTED_PROXY_COUNT): behind your
# own proxies, every client would otherwise share the proxy's address and one lock per username.
AXES_CLIENT_IP_CALLABLE = "portal.auth.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are not kept (the audit trail has staff)
AXES_ENABLE_ADMIN = False  # lockouts are listed and cleared by the axes_* commands
AXES_VERBOSE = False

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
FORMAT_MODULE_PATH = ["portal.formats"]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    # Photo files: encrypted blobs, never served directly (no MEDIA_URL route exists).
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 8
# HTTPS is on when the public address is https (the README's production block sets SITE_URL
# so): cookies only over HTTPS, plain HTTP redirected, and HSTS for a year. Each can be set.
HTTPS = SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE_HSTS_SECONDS > 0
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS > 0)
# How many proxies of ours stand in front of the web process (each appends to X-Forwarded-For
# and the first sets X-Forwarded-Proto); 0: the client is REMOTE_ADDR, and neither header is
# believed, since otherwise any client could claim https or another address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Content-Security-Policy (django-csp): the pages use no inline script or style, and nothing
# from another origin. The API's Swagger page adds what it needs, on that view only
# (portal/api/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Guardian <no-reply@guardian.local>")
if env.str("EMAIL_URL", default=""):
    # e.g. smtp+tls://user:password@host:587; what the URL leaves out keeps Django's default.
    _email = env.email_url("EMAIL_URL")
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
    EMAIL_PORT = _email["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
    if _email["EMAIL_FILE_PATH"]:
        EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Celery ----------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    # The filesystem transport has no event loop: a worker handles acks only between 2-second
    # polls, so with a prefetch of one per process, chained tasks (an erasure's steps) wait up
    # to 2 s each. A larger prefetch lets the next message in at once.
    CELERY_WORKER_PREFETCH_MULTIPLIER = 8
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    # With acks_late, a task waits in the broker, not in a worker that is busy.
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 180
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "biometrics.tasks.photo_process_task": {"queue": "faces"},
    "biometrics.tasks.erasure_step_task": {"queue": "erasure"},
    "biometrics.tasks.erasure_watchdog_task": {"queue": "erasure"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

# --- REST framework --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.IsGuardian"],
    # JSON objects only, bounded (portal/api/limits.py); the two image endpoints add multipart.
    "DEFAULT_PARSER_CLASSES": ["portal.api.limits.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Guardian API",
    "DESCRIPTION": "What biometric data a school holds about a child, and the parent's controls.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the package, not a CDN: the docs work offline and under a strict CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Four "status" choice sets: each gets its own name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "PurposeStatusEnum": ["active", "inactive"],
        "PhotoStatusEnum": ["pending", "enrolled", "rejected"],
        "ErasureStatusEnum": ["pending", "running", "verified", "needs_attention"],
        "ExportStatusEnum": ["pending", "running", "ready", "failed", "expired"],
    },
}

# --- Guardian ----------------------------------------------------------------------------------
MAGIC_LINK_TTL_SECONDS = 15 * 60
# A child's sign-in link (docs/child-sign-in.md) is printed on a sheet and handed out in class,
# so it lives longer than a parent's emailed one; it still works once, and a new sheet ends it.
CHILD_LINK_TTL_SECONDS = env.int("CHILD_LINK_TTL_SECONDS", default=7 * 24 * 3600)
# Sign-in limits (README "Sign-in and its limits"): per requesting IP, requests per hour (429
# past it); per address, a link is held back only while the previous one, sent less than the
# cool-down ago, is still unused (it doubles with each link sent in the hour, up to the max,
# always shorter than a link's life).
MAGIC_LINK_MAX_PER_IP = env.int("MAGIC_LINK_MAX_PER_IP", default=20)
MAGIC_LINK_COOLDOWN_SECONDS = env.int("MAGIC_LINK_COOLDOWN_SECONDS", default=60)
MAGIC_LINK_COOLDOWN_MAX_SECONDS = env.int("MAGIC_LINK_COOLDOWN_MAX_SECONDS", default=10 * 60)
API_TOKEN_TTL_SECONDS = env.int("API_TOKEN_TTL_SECONDS", default=60 * 60 * 24)
# Parents' bearer tokens (django-rest-knox): only a SHA-512 digest is stored; revoking deletes.
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": timedelta(seconds=API_TOKEN_TTL_SECONDS),
    "AUTO_REFRESH": False,
}
FACE_TOLERANCE = env.float("FACE_TOLERANCE", default=0.6)
FACE_MAX_UPLOAD_BYTES = env.int("FACE_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
# Pixels an upload's header may declare: a JPEG is decoded reduced, a PNG or WebP whole (a
# 49 MP PNG can be 140 KB). Refused from the header, before anything is decoded.
FACE_MAX_PIXELS = env.int("FACE_MAX_PIXELS", default=50_000_000)
FACE_MAX_PIXELS_PNG_WEBP = env.int("FACE_MAX_PIXELS_PNG_WEBP", default=16_000_000)
# Identification by image decodes in the web request: only a camera frame is taken.
IDENTIFY_MAX_UPLOAD_BYTES = env.int("IDENTIFY_MAX_UPLOAD_BYTES", default=2 * 1024 * 1024)
IDENTIFY_MAX_PIXELS = env.int("IDENTIFY_MAX_PIXELS", default=2_100_000)
# A JSON body: at most this many bytes, nested at most this deep (portal/api/limits.py).
API_JSON_MAX_BYTES = env.int("API_JSON_MAX_BYTES", default=64 * 1024)
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=16)
FACE_DETECT_MAX_SIDE = env.int("FACE_DETECT_MAX_SIDE", default=1024)
FACE_MIN_SIZE = env.int("FACE_MIN_SIZE", default=60)
REFERENCE_HOLDER_URL = env.str("REFERENCE_HOLDER_URL", default="http://127.0.0.1:8765")
# The demo's reference holder (seed_demo, run_reference_holder): not needed in production.
REFERENCE_HOLDER_SECRET = env_secret(
    "REFERENCE_HOLDER_SECRET",
    dev_file="dev-holder-secret",
    generate=lambda: secrets.token_hex(24),
    needed=False,
)
HOLDER_TIMEOUT_SECONDS = env.float("HOLDER_TIMEOUT_SECONDS", default=5.0)
# Holders on loopback, private or link-local addresses (biometrics.holder_guard): allowed in the
# embedded default (SQLite), whose reference holder listens on 127.0.0.1; refused by default on
# PostgreSQL, i.e. in a real deployment.
HOLDER_ALLOW_PRIVATE_ADDRESSES = env.bool(
    "HOLDER_ALLOW_PRIVATE_ADDRESSES",
    default=DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3",
)
# Private networks holders may be on all the same (CIDRs, e.g. a school's gate-controller LAN).
HOLDER_ALLOWED_NETWORKS = env.list("HOLDER_ALLOWED_NETWORKS", default=[])
# Erasure (docs/erasure.md): a failed step's next try waits BACKOFF × 2^(failures−1) seconds
# (with jitter, at most BACKOFF_MAX); a step failing for ATTENTION_AFTER seconds needs attention
# and the DPO is emailed once (retries go on). A worker holds its steps on a lease it renews
# while it works; the watchdog (every 30 s) takes back expired leases at once, and re-drives a
# step due for STUCK seconds that no worker has picked up (its message was lost; a backlog
# still in the queue is not stuck).
ERASURE_RETRY_BACKOFF = env.float("ERASURE_RETRY_BACKOFF", default=2.0)
ERASURE_RETRY_BACKOFF_MAX = env.float("ERASURE_RETRY_BACKOFF_MAX", default=600.0)
ERASURE_ATTENTION_AFTER = env.float("ERASURE_ATTENTION_AFTER", default=3600.0)
ERASURE_LEASE_SECONDS = env.float("ERASURE_LEASE_SECONDS", default=30.0)
ERASURE_STUCK_SECONDS = env.float("ERASURE_STUCK_SECONDS", default=180.0)
# How many waiting steps of one kind a worker takes on together (one holder's, or the portal's).
ERASURE_BATCH = env.int("ERASURE_BATCH", default=50)
# Signed checkpoints of the audit trail (head hash, count, time) are written here, outside the
# database, daily and by `manage.py verify_audit --checkpoint`; verify_audit checks against them.
AUDIT_CHECKPOINT_DIR = Path(
    env.str("AUDIT_CHECKPOINT_DIR", default=str(VAR_DIR / "audit-checkpoints"))
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # every staff sign-in otherwise logs four lines
    },
}
