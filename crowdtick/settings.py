"""CrowdTick settings, read from the environment.

With no environment at all the site runs embedded: SQLite, an in-memory channel layer and
Celery tasks run in-process, so `make run` needs no service. `DATABASE_URL` switches the
record to PostgreSQL and `REDIS_URL` switches tallies, the channel layer, rate limits and the
Celery broker to Redis; `REDIS_SHARD_URLS` spreads the polls' keys and the channel layer over
several Redis servers (docs/redis-sharding.md).
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from crowdtick.env import env_bool, env_int, env_list, env_redis_shards, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)")
    SECRET_KEY = "django-insecure-local-development-only-key-do-not-deploy"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.humanize",  # naturaltime: how old an export file is, in words
    "django.contrib.messages",  # one-time notices on the owner page ("Your poll is ready", "Settings saved")
    "django.contrib.staticfiles",
    "django.forms",  # its widget templates, for FORM_RENDERER below
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "polls",
    "web",
    "api",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "crowdtick.middleware.DatabaseUnavailableMiddleware",
    "crowdtick.middleware.owner_pages_never_cached",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Forms render with the project's templates too (templates/forms/), not only Django's own.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

ROOT_URLCONF = "crowdtick.urls"
WSGI_APPLICATION = "crowdtick.wsgi.application"
ASGI_APPLICATION = "crowdtick.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- The record -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
# DB_POOL=1 uses psycopg's connection pool (one per process, shared by its threads) instead of
# one persistent connection per thread; docs/benchmarks.md has the measurement behind the default.
DB_POOL = env_bool("DB_POOL", False)
# Seconds a query (or any exchange with PostgreSQL) may take before the connection is dropped and
# the request answers 503; 0 waits forever (a long migration, say).
DB_WAIT_TIMEOUT = env_int("DB_WAIT_TIMEOUT", 3, minimum=0)
# Seconds a 503 asks clients to wait before trying again while the database does not answer.
DB_RETRY_AFTER = 5
# Django's health check costs a `SELECT 1` round trip on every request's first query (docs/benchmarks.md,
# "The figures behind the settings"). Without it a connection PostgreSQL dropped fails one request
# per thread (a 503 with Retry-After, not a 500) and Django reconnects on the next; DB_HEALTH_CHECKS=1
# trades that for the round trip.
DB_HEALTH_CHECKS = env_bool("DB_HEALTH_CHECKS", False)
# Behind PgBouncer in transaction pooling, a server-side cursor (the CSV export's `.iterator()`) outlives
# its transaction on a server connection the next fetch may not get: DB_DISABLE_SERVER_SIDE_CURSORS=1
# fetches results whole instead (docs/deploy-k8s.md, "PgBouncer").
DB_DISABLE_SERVER_SIDE_CURSORS = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=0 if DB_POOL else env_int("DB_CONN_MAX_AGE", 600),
            conn_health_checks=DB_HEALTH_CHECKS and not DB_POOL,
        )
    }
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DB_DISABLE_SERVER_SIDE_CURSORS
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Bounded waits, so a frozen PostgreSQL answers 503 instead of hanging (crowdtick/db_backend).
        DATABASES["default"]["ENGINE"] = "crowdtick.db_backend"
    if DB_POOL:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 2),
            "max_size": env_int("DB_POOL_MAX", 8, minimum=1),
            "timeout": 10,
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # WAL lets the web server read while a vote writes.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: tallies, channel layer, broker, rate limits ---------------------------------
# The home server: the Celery broker, rate limits, presence, locks and checkpoints.
REDIS_URL = env_str("REDIS_URL")
# The servers each poll's keys (tally, shared copy, marks) and the channel layer are spread over,
# comma-separated; default REDIS_URL alone. A poll's keys all live on one of them, chosen by its slug
# (polls/redis_client.py); changing the list moves polls: docs/redis-sharding.md says what to do.
REDIS_SHARD_URLS = env_redis_shards("REDIS_SHARD_URLS", REDIS_URL)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # channels-redis spreads channels and groups over these hosts itself (a hash of the name).
                # redis-py's defaults (5 s socket timeout, 100 connections) cut idle viewers.
                "hosts": [
                    {"address": url, "socket_timeout": None, "max_connections": 10_000} for url in REDIS_SHARD_URLS
                ],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# WebSocket sends per second an ASGI process aims at for one poll's audience (realtime.hub): above
# this / 4 viewers in a process, they get fewer than 4 pushes a second rather than a growing backlog.
LIVE_SENDS_PER_SECOND = env_int("LIVE_SENDS_PER_SECOND", 5000, minimum=1)
# Live sockets one network (address, or IPv6 /64) may hold open in one ASGI process (realtime/sockets.py).
# Generous, as the per-address vote limit is: a hall of thousands of phones may share one NAT address.
WS_SOCKETS_PER_NETWORK = env_int("WS_SOCKETS_PER_NETWORK", 5000, minimum=1)

# --- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# A task not acknowledged within this long is handed to another worker. Every task here is
# idempotent and finishes in seconds, so five minutes only delays recovery after a crash.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
# A request that enqueues work (an export) while Redis is down must fail fast, not hang a thread.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Periodic work. `expires` drops ticks that waited longer than one period (a worker was down):
# the next tick does the same idempotent work, so a backlog would only repeat it.
CELERY_BEAT_SCHEDULE = {
    "reconcile-tallies": {"task": "polls.tasks.reconcile_tallies", "schedule": 10.0, "options": {"expires": 10}},
    "announce-deadlines": {"task": "polls.tasks.announce_deadlines", "schedule": 5.0, "options": {"expires": 5}},
    "refresh-vote-minutes": {"task": "polls.tasks.refresh_vote_minutes", "schedule": 15.0, "options": {"expires": 15}},
    "archive-idle-polls": {"task": "polls.tasks.archive_idle_polls", "schedule": 600.0, "options": {"expires": 600}},
    "end-idle-events": {"task": "polls.tasks.end_idle_events", "schedule": 600.0, "options": {"expires": 600}},
}

# One-time notices ride in a signed cookie: the site keeps no server-side sessions. The cookie takes the
# SESSION_COOKIE_* flags (Secure below, HttpOnly, SameSite=Lax).
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

# --- Security ----------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
if SECURE_SSL_REDIRECT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default-compatible.
# HSTS preload is a commitment the operator makes for the whole domain, so it stays opt-in.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Voters ------------------------------------------------------------------------------
VOTER_COOKIE_NAME = "ct_voter"
VOTER_COOKIE_MAX_AGE = 60 * 60 * 24 * 365
# Header nginx fills with the client's address (of a list, the last entry: the one nginx added); empty means
# trust REMOTE_ADDR only. `make run` passes no proxy header on either (uvicorn --no-proxy-headers).
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER")
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
# Requests per RATELIMIT_WINDOW seconds, over any such stretch of time (a sliding window: polls/ratelimit.py).
# Per address is generous: a hall of 2,000 phones behind one NAT address must be able to vote twice
# over in one window; per voter is strict, since one person needs one vote per poll plus a few retries.
RATELIMIT_WINDOW = env_int("RATELIMIT_WINDOW", 60, minimum=1)
RATELIMIT_VOTES_PER_ADDRESS = env_int("RATELIMIT_VOTES_PER_ADDRESS", 5000, minimum=1)
RATELIMIT_VOTES_PER_VOTER = env_int("RATELIMIT_VOTES_PER_VOTER", 10, minimum=1)
RATELIMIT_POLLS_PER_ADDRESS = env_int("RATELIMIT_POLLS_PER_ADDRESS", 60, minimum=1)
# New polls per address over any 24 hours. The per-minute limit alone let one address make 86,400 a
# day; 200 still lets a school or an office behind one address make a poll per class or meeting all day.
RATELIMIT_POLLS_PER_ADDRESS_PER_DAY = env_int("RATELIMIT_POLLS_PER_ADDRESS_PER_DAY", 200, minimum=1)
# A poll with no ballot, no change by its owner and no deadline ahead for this many days is archived:
# closed, its Redis keys released, its results still readable (polls.upkeep.polls_archive_idle). 0: never.
POLL_ARCHIVE_AFTER_DAYS = env_int("POLL_ARCHIVE_AFTER_DAYS", 30, minimum=0)

# --- Static files ------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "crowdtick.static_storage.ManifestStaticFilesStorage"
            if not DEBUG and env_bool("STATIC_MANIFEST", False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True
# CSV exports written by the Celery worker for owners to download (a volume shared with web).
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(BASE_DIR / "exports")))
# Polls with more ballots than this export through that task; smaller ones stream their CSV from the web process.
EXPORT_INLINE_MAX_BALLOTS = env_int("EXPORT_INLINE_MAX_BALLOTS", 20_000, minimum=0)

# --- API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.QuickContentNegotiation",
    # Every API view says no in JSON `{"detail"}`, the schema and docs views of drf-spectacular too.
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CrowdTick API",
    "DESCRIPTION": "Create polls, cast votes and read results; create and run events (sequences of questions).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Deep links make each operation's path a link inside its expand button: nested controls (axe: nested-interactive).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    # The poll's visibilities, and the subset its creator may pick (events set `presenter`).
    "ENUM_NAME_OVERRIDES": {
        "ResultsVisibilityEnum": "polls.models.Poll.Visibility",
        "CreatorResultsVisibilityEnum": "polls.models.CREATOR_VISIBILITIES",
    },
    # An event's control calls carry its owner token (api.views.EventControlView).
    "APPEND_COMPONENTS": {"securitySchemes": {"ownerToken": {"type": "http", "scheme": "bearer"}}},
}

# --- Misc --------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
DEFAULT_EXCEPTION_REPORTER = "crowdtick.debug.ExceptionReporterForAnyRequest"

# Owner links carry the poll's secret in their path: mask it in every log record (crowdtick/log_redaction.py).
LOGGING_CONFIG = "crowdtick.log_redaction.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
