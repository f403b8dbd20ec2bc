"""Settings, read from the environment (and an optional .env file) by one django-environ reader.

With no environment at all the embedded default runs: SQLite in ./db.sqlite3 and Celery tasks
executed in-process. DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
Every variable is documented in .env.example.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from cdp.local_secrets import TEST_ENCRYPTION_KEY, TEST_HASH_SECRET
from cdp.queues import task_routes

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Off unless asked for (`make run` sets DEBUG=1): debug pages never reach a deployment by
# accident. With DEBUG off the process is production, except under the test suite (pytest
# sets PYTEST_VERSION), which runs with DEBUG off and a throwaway key.
DEBUG = env.bool("DEBUG", default=False)
TESTING = "PYTEST_VERSION" in os.environ
PRODUCTION = not DEBUG and not TESTING
# Production has no default secret and no default host: start-up fails, saying what to set.
if PRODUCTION and not env.str("SECRET_KEY", default=""):
    raise ImproperlyConfigured(
        "Set the SECRET_KEY environment variable (50+ random characters, e.g. from "
        '`python -c "import secrets; print(secrets.token_urlsafe(50))"`), or DEBUG=1 for '
        "local development."
    )
if PRODUCTION and not env.list("ALLOWED_HOSTS", default=[]):
    raise ImproperlyConfigured(
        "Set the ALLOWED_HOSTS environment variable to the host names this server answers to, "
        "comma-separated (e.g. ALLOWED_HOSTS=cdp.example.com), or DEBUG=1 for local development."
    )
SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-key")
# Any host in development and tests (production has raised above when none is set).
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Keys for secrets at rest (cdp/crypto.py), apart from SECRET_KEY: the first encrypts, all decrypt.
CDP_ENCRYPTION_KEYS = env.list("CDP_ENCRYPTION_KEYS", default=[])
if not CDP_ENCRYPTION_KEYS and PRODUCTION:
    raise ImproperlyConfigured(
        "Set CDP_ENCRYPTION_KEYS to a Fernet key (stored credentials are encrypted with it); "
        'make one with `python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())"`, or DEBUG=1 for local development.'
    )
if not CDP_ENCRYPTION_KEYS and TESTING:
    CDP_ENCRYPTION_KEYS = [TEST_ENCRYPTION_KEY]
# With DEBUG on and no key, cdp/crypto.py generates one into .env when a secret is first stored.
CDP_LOCAL_ENV_FILE = BASE_DIR / ".env"

# The key of data-compliance hashing (HMAC-SHA256 of personal values, apps/consents): secret, so
# that nobody can hash a dictionary of e-mails and match them. Required in production; DEBUG
# generates one into .env on first use; the tests use a fixed one.
CDP_HASH_SECRET = env.str("CDP_HASH_SECRET", default="")
if not CDP_HASH_SECRET and PRODUCTION:
    raise ImproperlyConfigured(
        "Set CDP_HASH_SECRET to 32+ random characters (compliance rules hash personal values "
        'with it), e.g. from `python -c "import secrets; print(secrets.token_urlsafe(32))"`, '
        "or DEBUG=1 for local development."
    )
if not CDP_HASH_SECRET and TESTING:
    CDP_HASH_SECRET = TEST_HASH_SECRET
# Consent categories of CMPs (Google Consent Mode v2, IAB TCF purposes, OneTrust groups...) and
# the consent type key each one sets, as JSON: {"ad_storage": "advertising", "tcf:1": "storage"}.
CDP_CONSENT_CATEGORY_MAP = env.json("CDP_CONSENT_CATEGORY_MAP", default={})

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "apps.accounts",
    "apps.sources",
    "apps.consents",
    "apps.events",
    "apps.profiles",
    "apps.segments",
    "apps.workflows",
    "apps.pipeline",
    "apps.destinations",
    "apps.insights",
    "django_htmx",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Tracking requests (SDKs, write keys) stop here: the rest is for browsers and the API.
    "cdp.fastpath.TrackingFastPathMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cdp.outage.DatabaseUnavailableMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # WAL lets readers run beside the writer; IMMEDIATE avoids lock-upgrade deadlocks.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT", default=20),
    }
else:
    _db.setdefault("OPTIONS", {})
    if env.bool("DATABASE_POOL", default=True):
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            # Seconds a request waits for a pooled connection before it answers 503: short, so
            # that an outage fails fast instead of holding every thread (cdp/outage.py).
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=1.0),
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=1))
# Seconds a client is told to wait (Retry-After) when the database is unavailable (503).
CDP_RETRY_AFTER_SECONDS = env.int("CDP_RETRY_AFTER_SECONDS", default=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and cache -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "cdp.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Embedded default: no broker, tasks run in-process right after the commit.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = env.bool("CELERY_TASK_EAGER_PROPAGATES", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# A publish must not hang a tracking request when Redis is down: fail fast, the events table
# is the outbox and the periodic redispatch picks the events up later.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Named queues per workload, so operators can give each its own workers (`make worker` consumes
# them all): `celery -A cdp worker -Q processing` scales event processing on its own.
CELERY_TASK_ROUTES = task_routes()  # every task's queue: cdp/queues.py
CELERY_BEAT_SCHEDULE = {
    "redispatch-unprocessed-events": {
        "task": "apps.events.tasks.redispatch_unprocessed",
        "schedule": env.float("CDP_REDISPATCH_INTERVAL", default=60.0),
    },
    # Keeps time-based segment conditions (in_the_last, not_performed within days) true.
    "recompute-segments": {
        "task": "apps.segments.tasks.recompute_segments",
        "schedule": env.float("CDP_SEGMENT_RECOMPUTE_INTERVAL", default=300.0),
    },
    # Predictive scores: trainings and scorings that are due (apps/segments/scoring).
    "run-due-scores": {
        "task": "apps.segments.scoring.tasks.run_due_scores",
        "schedule": env.float("CDP_SCORES_INTERVAL", default=3600.0),
    },
    # Workflow runs left queued (broker down when processing committed) are queued again.
    "redispatch-queued-workflow-runs": {
        "task": "apps.workflows.tasks.redispatch_queued_runs",
        "schedule": env.float("CDP_REDISPATCH_INTERVAL", default=60.0),
    },
    # Waiting runs whose scheduled resumption was lost (broker restarted) are resumed.
    "resume-due-workflow-runs": {
        "task": "apps.workflows.tasks.resume_due_runs",
        "schedule": env.float("CDP_WORKFLOW_RESUME_INTERVAL", default=60.0),
    },
    # Message ids of people and group operations past CDP_OPERATION_RECEIPT_RETENTION_DAYS.
    "purge-operation-receipts": {
        "task": "apps.profiles.tasks.purge_operation_receipts",
        "schedule": env.float("CDP_OPERATION_RECEIPT_PURGE_INTERVAL", default=3600.0),
    },
    "purge-workflow-runs": {
        "task": "apps.workflows.tasks.purge_runs",
        "schedule": env.float("CDP_WORKFLOW_PURGE_INTERVAL", default=3600.0),
    },
    # Grants past their expiry (a consent type's auto-revoke) are revoked.
    "revoke-expired-consents": {
        "task": "apps.consents.tasks.revoke_expired_consents",
        "schedule": env.float("CDP_CONSENT_EXPIRY_INTERVAL", default=300.0),
    },
    # Expired privacy exports deleted; privacy requests whose worker was lost run again.
    "privacy-housekeeping": {
        "task": "apps.consents.privacy.tasks.privacy_housekeeping",
        "schedule": env.float("CDP_PRIVACY_HOUSEKEEPING_INTERVAL", default=600.0),
    },
    # Deliveries due (retries, debounced profile changes, a dead worker's claims) are sent.
    "dispatch-due-deliveries": {
        "task": "apps.destinations.tasks.dispatch_due",
        "schedule": env.float("CDP_DESTINATION_DISPATCH_INTERVAL", default=5.0),
    },
    "purge-delivery-log": {
        "task": "apps.destinations.tasks.purge_log",
        "schedule": env.float("CDP_DESTINATION_PURGE_INTERVAL", default=3600.0),
    },
}

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Tests create many users: a fast hash (never for real passwords) keeps the suite quick.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "insights:home"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- REST framework and the OpenAPI schema ----------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "cdp.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "cdp.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CDP API",
    "DESCRIPTION": "Tracking endpoints (write key) and the management API (token).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cdp.openapi.add_tracking_endpoints",
    ],
    # Choice sets whose field names (kind, status) other components use too: each named, the
    # older ones keeping the names they had.
    "ENUM_NAME_OVERRIDES": {
        "KindEnum": "apps.segments.models.SegmentKind",
        "StatusEnum": "apps.workflows.models.RunStatus",
        "PrivacyRequestKindEnum": "apps.consents.models.privacy.PrivacyRequestKind",
        "PrivacyRequestStatusEnum": "apps.consents.models.privacy.PrivacyRequestStatus",
        "ScoreVersionStatusEnum": "apps.segments.scoring.models.VersionStatus",
        "ResourceKindEnum": "apps.destinations.models.ResourceKind",
        "DeliveryStatusEnum": "apps.destinations.models.DeliveryStatus",
    },
}

# --- CORS of the management API (/api/v1/*, /api/schema/) ------------------------------------
# Browsers on these origins (exact "https://host[:port]" values) may call the management API;
# none by default. Never a wildcard: the API acts with the caller's session or token. Tracking
# endpoints answer any origin on their own (apps/events/tracking.py), without credentials.
CORS_URLS_REGEX = r"^/api/(v1/|schema/)"
CORS_ALLOWED_ORIGINS = env.list("CDP_API_CORS_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = env.bool("CDP_API_CORS_CREDENTIALS", default=False)

# --- Security (production) --------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
# Exempt: tracking endpoints (SDKs would turn a redirected POST into a GET) and the health
# checks a load balancer calls over plain HTTP.
SECURE_REDIRECT_EXEMPT = [
    r"^api/(track|batch|identify|alias|people|groups|groups/properties)/?$",
    r"^api/bridges/webhook/",
    r"^v1/(track|identify|page|screen|group|alias|batch|import)/?$",
    r"^track/?$",
    r"^healthz$",
    r"^readyz$",
]

# --- Ingestion --------------------------------------------------------------------------------
CDP_MAX_BATCH_EVENTS = env.int("CDP_MAX_BATCH_EVENTS", default=1000)
CDP_MAX_EVENT_BYTES = env.int("CDP_MAX_EVENT_BYTES", default=32 * 1024)
CDP_MAX_REQUEST_BYTES = env.int("CDP_MAX_REQUEST_BYTES", default=1024 * 1024)
# PostgreSQL: how long the insert of a tracking request may wait for a lock or run (lock_timeout
# and statement_timeout, for that transaction only) before the request answers 503 and the
# client retries, rather than piling up requests behind a locked table. 0: no limit.
CDP_INGEST_DB_TIMEOUT_MS = env.int("CDP_INGEST_DB_TIMEOUT_MS", default=5000)
# PostgreSQL: requests of at most CDP_INGEST_GROUP_MAX_EVENTS events that arrive together in a
# web process share one insert and commit (apps/events/groupcommit.py).
CDP_INGEST_GROUP_COMMIT = env.bool("CDP_INGEST_GROUP_COMMIT", default=True)
CDP_INGEST_GROUP_MAX_EVENTS = env.int("CDP_INGEST_GROUP_MAX_EVENTS", default=50)
# Clients more than this far in the future are clamped to the time received (with a warning).
CDP_MAX_FUTURE_SECONDS = env.int("CDP_MAX_FUTURE_SECONDS", default=24 * 3600)
# Events still unprocessed this long after they arrived, and workflow runs still queued this
# long after processing recorded them, are dispatched again.
CDP_REDISPATCH_AFTER_SECONDS = env.int("CDP_REDISPATCH_AFTER_SECONDS", default=120)
# How a tracking request queues the processing of the events it committed. "inline": the
# request publishes the task itself after the commit. "background": it hands the ids to a
# thread of its web process that publishes the ids of many requests as one task every
# CDP_DISPATCH_INTERVAL_MS (the broker round trip leaves the request path; events of a process
# that dies before publishing are queued again by the redispatch). Tasks that run in-process
# (CELERY_TASK_ALWAYS_EAGER) always take the inline path.
CDP_DISPATCH_MODE = env.str("CDP_DISPATCH_MODE", default="background" if REDIS_URL else "inline")
if CDP_DISPATCH_MODE not in ("inline", "background"):
    raise ValueError(f"CDP_DISPATCH_MODE must be inline or background, not {CDP_DISPATCH_MODE!r}")
CDP_DISPATCH_INTERVAL_MS = env.int("CDP_DISPATCH_INTERVAL_MS", default=200)
CDP_PROCESS_BATCH_SIZE = env.int("CDP_PROCESS_BATCH_SIZE", default=1000)
# How many reverse proxies in front of us append to X-Forwarded-For (0: use REMOTE_ADDR).
CDP_TRUSTED_PROXY_COUNT = env.int("CDP_TRUSTED_PROXY_COUNT", default=0)
# Seconds a source stays cached in each web process when no change is signalled (the shared
# cache carries changes sooner, see CDP_SHARED_VERSION_CHECK_SECONDS).
CDP_SOURCE_CACHE_SECONDS = env.int("CDP_SOURCE_CACHE_SECONDS", default=5)
# Seconds a process trusts what it keeps in memory for hot paths (sources by write key,
# suppressions, compliance rules, workflow rules) before it reads their version tokens in the
# shared cache again (cdp/shared_version.py): a change made in another process is seen within
# about this delay. The older names of this setting are still read.
CDP_SHARED_VERSION_CHECK_SECONDS = env.float(
    "CDP_SHARED_VERSION_CHECK_SECONDS",
    default=env.float(
        "CDP_SOURCE_CACHE_CHECK_SECONDS",
        default=env.float("CDP_WORKFLOW_RULES_CACHE_SECONDS", default=1.0),
    ),
)
# Traits that are personal data: people operations store them as private traits, shown only
# to users with the "view private traits" permission.
CDP_PRIVATE_TRAITS = env.list(
    "CDP_PRIVATE_TRAITS",
    default=["email", "phone", "name", "first_name", "last_name", "address", "birthday"],
)
# People and group operations (/api/people, /api/groups, /api/groups/properties) that carry a
# message id apply at most once per (source, message id) within this many days (a retry after
# that applies again); older receipts are purged by the beat task.
CDP_OPERATION_RECEIPT_RETENTION_DAYS = env.int("CDP_OPERATION_RECEIPT_RETENTION_DAYS", default=7)

# --- Outbound requests (cdp/outbound.py) ------------------------------------------------------
# Hosts and networks (CIDR) that outbound requests may reach although they are internal
# (loopback, private, link-local, reserved): comma-separated, empty by default.
CDP_OUTBOUND_ALLOW = env.list("CDP_OUTBOUND_ALLOW", default=[])

# --- Workflows ----------------------------------------------------------------------------------
# How deep a chain of workflow-emitted events may go before the engine stops routing it.
CDP_WORKFLOW_MAX_DEPTH = env.int("CDP_WORKFLOW_MAX_DEPTH", default=5)
# Runs (and their node traces) older than this are purged by the beat task.
CDP_WORKFLOW_RUN_RETENTION_DAYS = env.int("CDP_WORKFLOW_RUN_RETENTION_DAYS", default=30)
# Each JSON value stored in a node trace (input, output) is capped at this many bytes.
CDP_WORKFLOW_TRACE_MAX_BYTES = env.int("CDP_WORKFLOW_TRACE_MAX_BYTES", default=8 * 1024)
# Branches of one run that execute concurrently (threads inside the run task).
CDP_WORKFLOW_MAX_PARALLEL = env.int("CDP_WORKFLOW_MAX_PARALLEL", default=8)
# Seconds a node may run when its action declares no timeout.
CDP_WORKFLOW_NODE_TIMEOUT = env.float("CDP_WORKFLOW_NODE_TIMEOUT", default=30.0)
# Matched events per run_rules task.
CDP_WORKFLOW_DISPATCH_CHUNK = env.int("CDP_WORKFLOW_DISPATCH_CHUNK", default=100)
# Seconds a claimed run may stay running before the redispatch task takes its worker for lost
# and gives it back (queued, or waiting when it was resumed from a delay). Must exceed the
# longest legitimate run_rules task: a batch of CDP_WORKFLOW_DISPATCH_CHUNK runs shares one
# claim, and each node attempt is bounded by its timeout (docs/workflows.md).
CDP_WORKFLOW_RUN_LEASE_SECONDS = env.int("CDP_WORKFLOW_RUN_LEASE_SECONDS", default=900)
# Privacy requests: rows deleted per transaction by an erase (short batches: no long locks),
# days an export archive is kept, and the silence after which a running request is resumed.
CDP_PRIVACY_DELETE_BATCH = env.int("CDP_PRIVACY_DELETE_BATCH", default=5000)
CDP_PRIVACY_EXPORT_DAYS = env.int("CDP_PRIVACY_EXPORT_DAYS", default=7)
CDP_PRIVACY_STALLED_SECONDS = env.int("CDP_PRIVACY_STALLED_SECONDS", default=900)

# --- Destinations ------------------------------------------------------------------------------
# Seconds before each retry of a failed delivery: the Standard Webhooks schedule (5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 10 h), then two daily attempts (about 3 days in all), with +-10%
# jitter. A delivery failing its last attempt is dead (replayable).
CDP_DESTINATION_RETRY_SCHEDULE = env.list(
    "CDP_DESTINATION_RETRY_SCHEDULE",
    cast=float,
    default=[5, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400],
)
# Seconds a worker holds the deliveries it claimed; a worker that died loses them after this
# and another sends them again (same idempotency key).
CDP_DESTINATION_LEASE_SECONDS = env.int("CDP_DESTINATION_LEASE_SECONDS", default=300)
# Failed attempts in a row that open a destination's circuit, and how long it stays open
# (doubling each time it opens again, up to the maximum); then one probe decides.
CDP_DESTINATION_CIRCUIT_THRESHOLD = env.int("CDP_DESTINATION_CIRCUIT_THRESHOLD", default=10)
CDP_DESTINATION_CIRCUIT_COOLDOWN = env.float("CDP_DESTINATION_CIRCUIT_COOLDOWN", default=30.0)
CDP_DESTINATION_CIRCUIT_MAX_COOLDOWN = env.float(
    "CDP_DESTINATION_CIRCUIT_MAX_COOLDOWN", default=3600.0
)
# Seconds one deliver task sends before it queues itself again (other destinations get a turn).
CDP_DESTINATION_BUDGET = env.float("CDP_DESTINATION_BUDGET", default=30.0)
# Days the delivery log and finished deliveries are kept.
CDP_DESTINATION_LOG_RETENTION_DAYS = env.int("CDP_DESTINATION_LOG_RETENTION_DAYS", default=14)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
