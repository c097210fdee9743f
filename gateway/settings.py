"""Mailgate settings, read from the environment (see ``gateway/env.py`` and ``.env.example``).

With nothing but SECRET_KEY and MAILGATE_ENCRYPTION_KEYS set, Mailgate runs on its embedded
default: SQLite and a Celery broker on the file system. ``DATABASE_URL`` and
``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
"""

import os
from pathlib import Path

from gateway import env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env.string("MAILGATE_DATA_DIR", str(BASE_DIR / "var")))
# bin/run writes the embedded default's generated secrets here; real environment variables win.
env.load_file(DATA_DIR / "mailgate.env")

SECRET_KEY = env.string("SECRET_KEY")
DEBUG = env.boolean("DEBUG", False)
ALLOWED_HOSTS = env.strings("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.strings("CSRF_TRUSTED_ORIGINS", [])

# Secrets at rest: a comma-separated list of Fernet keys, the first encrypts, all decrypt.
MAILGATE_ENCRYPTION_KEYS = env.strings("MAILGATE_ENCRYPTION_KEYS", [])
# bcrypt cost of mailbox password hashes (Dovecot's and Mailu's default is 12).
MAILGATE_BCRYPT_ROUNDS = env.integer("MAILGATE_BCRYPT_ROUNDS", 12)

# OpenPGP (keys app): the GnuPG home Mailgate owns (trust anchors, contact keys, its own
# certification key), and ProtonCA's fingerprint, which an imported ProtonCA key must match.
MAILGATE_GNUPGHOME = Path(env.string("MAILGATE_GNUPGHOME", str(DATA_DIR / "gnupg")))
# How many times gpg-agent hashes a passphrase that protects a key (its s2k-count); 0 lets the
# agent calibrate it to about 100 ms on this machine. The tests use gpg's minimum, 65536.
MAILGATE_GPG_S2K_COUNT = env.integer("MAILGATE_GPG_S2K_COUNT", 0)
MAILGATE_PROTONCA_FINGERPRINT = env.string(
    "MAILGATE_PROTONCA_FINGERPRINT", "0a8652fe5d53386057899fe9d806c1af5978e8c7"
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "auditlog",
    "gateway",
    "hosts",
    "zones",
    "keys",
    "certs",
    "lab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "gateway.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gateway.middleware.ContentSecurityPolicyMiddleware",
    "gateway.middleware.AuditlogMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"

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

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'mailgate.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default has writers in several processes (the panel, the worker's processes
    # and their deployment threads): a write-ahead log lets readers go on while one writes, a
    # transaction takes the write lock when it begins (no deadlock on upgrading a read lock),
    # and a writer waits its turn for up to 20 s (https://www.sqlite.org/wal.html,
    # Django's SQLite notes: "transaction_mode").
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        transaction_mode="IMMEDIATE",
        timeout=20,
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "gateway:login"
LOGIN_REDIRECT_URL = "hosts:dashboard"
LOGOUT_REDIRECT_URL = "gateway:login"

# Login throttling: five failures per user name and address lock out for fifteen minutes.
AXES_FAILURE_LIMIT = env.integer("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 0.25
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_SENSITIVE_PARAMETERS = ["password", "otp_token"]

OTP_TOTP_ISSUER = "Mailgate"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.string("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gateway.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "gateway.api.authentication.TokenPermission",
    ],
    # JSON with a nesting limit and no lone surrogates (gateway/api/parsers.py), then DRF's own.
    "DEFAULT_PARSER_CLASSES": [
        "gateway.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "gateway.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "gateway.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mailgate API",
    "DESCRIPTION": "Domains, mailboxes, aliases, hosts, relays and tunnels of a mail gateway.",
    "VERSION": "1",
    # The schema and its documentation are for signed-in people and tokens only: they list
    # every operation and field, which the world need not know.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the status colours, wherever a field uses them.
    # Two fields named "trigger" (deployments, DNS checks) have different choices: one name each.
    "ENUM_NAME_OVERRIDES": {
        "ColourEnum": "gateway.status.Colour",
        "DeploymentTriggerEnum": "hosts.choices.DeploymentTrigger",
        "CheckTriggerEnum": "zones.choices.CheckTrigger",
        "CertificateTriggerEnum": "certs.choices.Trigger",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.api.schema.document_errors",
    ],
}

# Change log: secrets are censored by gateway.audit.censor before they reach a log entry.
AUDITLOG_MASK_CALLABLE = "gateway.audit.censor"

# Celery: the embedded default needs no server (kombu's filesystem transport).
CELERY_BROKER_URL = env.string("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(DATA_DIR / "celery" / "queue"),
        "data_folder_out": str(DATA_DIR / "celery" / "queue"),
        "processed_folder": str(DATA_DIR / "celery" / "processed"),
        "control_folder": str(DATA_DIR / "celery" / "control"),
        "store_processed": False,
        # How often an idle worker looks for new messages (kombu's default is 1 s): a change
        # goes live through two tasks (converge, then deploy), so each second counts twice.
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    else {}
)
CELERY_RESULT_BACKEND = env.string(
    "CELERY_RESULT_BACKEND",
    f"file://{DATA_DIR / 'celery' / 'results'}"
    if CELERY_BROKER_URL.startswith("filesystem://")
    else CELERY_BROKER_URL,
)
# The embedded broker's folders exist for any data folder, not only the one bin/run prepared
# (a command such as ``lab up`` queues work as soon as it changes the directory).
if CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("queue", "processed", "control", "results"):
        (DATA_DIR / "celery" / folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.boolean("CELERY_TASK_ALWAYS_EAGER", False)

# The cache holds state every web worker must share (the status check's cooldown): Redis
# beside a Redis broker, else files in MAILGATE_DATA_DIR (the embedded default has no server).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CELERY_BROKER_URL,
        "KEY_PREFIX": "mailgate",
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache"),
    }
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The worker's processes (Celery's own default: one per CPU). "Deploy all" spreads its hosts
# over this many tasks, each carrying its share at once (hosts.tasks.deployments_run).
CELERY_WORKER_CONCURRENCY = env.integer("CELERY_WORKER_CONCURRENCY", os.cpu_count() or 1)

# DNS (zones app): the resolver the live checks ask, as "address[:port]" items separated by
# commas (empty: the system's /etc/resolv.conf); a validating one makes the DNSSEC check
# meaningful. Celery beat checks every domain this often (seconds).
MAILGATE_DNS_RESOLVER = env.string("MAILGATE_DNS_RESOLVER", "")
MAILGATE_DNS_CHECK_INTERVAL = env.integer("MAILGATE_DNS_CHECK_INTERVAL", 3600)
# The status page: Celery beat runs its probes this often (seconds); the TLS probe also trusts
# the CA certificates in this PEM file (a private or lab CA; empty: the system's alone); the
# open-relay probe asks the gateway to take mail for this outside address (never sent: the
# probe stops before DATA).
MAILGATE_STATUS_INTERVAL = env.integer("MAILGATE_STATUS_INTERVAL", 300)
# "Check now" (page and API) queues at most one run per this many seconds.
MAILGATE_STATUS_CHECK_COOLDOWN = env.integer("MAILGATE_STATUS_CHECK_COOLDOWN", 60)
MAILGATE_STATUS_CA_FILE = env.string("MAILGATE_STATUS_CA_FILE", "")
MAILGATE_RELAY_PROBE_RECIPIENT = env.string(
    "MAILGATE_RELAY_PROBE_RECIPIENT", "mailgate-relay-probe@example.net"
)
# Deployments: a worker beats this often (seconds) while it deploys; a running deployment silent
# for the lease has lost its worker, and Celery beat concludes it from what the host reports.
MAILGATE_DEPLOY_HEARTBEAT = env.integer("MAILGATE_DEPLOY_HEARTBEAT", 10)
MAILGATE_DEPLOY_LEASE = env.integer("MAILGATE_DEPLOY_LEASE", 120)
# Convergence: a committed change queues the deployment of every host whose bundle it alters,
# this many seconds later, so that a burst of edits becomes one deployment (docs/architecture.md).
MAILGATE_CONVERGE = env.boolean("MAILGATE_CONVERGE", True)
MAILGATE_CONVERGE_DELAY = env.integer("MAILGATE_CONVERGE_DELAY", 1)
# Each mailbox's storage in use is read from the mail servers this often (seconds).
MAILGATE_USAGE_INTERVAL = env.integer("MAILGATE_USAGE_INTERVAL", 900)

# Certificates (certs app, docs/certificates.md): the ACME server's directory, the address it
# may write to about the account, a PEM file of CAs to trust for the ACME server's own HTTPS (a
# staging or private CA such as Pebble; empty: the system's), and when renewal starts.
MAILGATE_ACME_DIRECTORY = env.string(
    "MAILGATE_ACME_DIRECTORY", "https://acme-v02.api.letsencrypt.org/directory"
)
MAILGATE_ACME_EMAIL = env.string("MAILGATE_ACME_EMAIL", "")
MAILGATE_ACME_CA_FILE = env.string("MAILGATE_ACME_CA_FILE", "")
MAILGATE_ACME_RENEW_DAYS = env.integer("MAILGATE_ACME_RENEW_DAYS", 30)
MAILGATE_ACME_INTERVAL = env.integer("MAILGATE_ACME_INTERVAL", 12 * 60 * 60)

CELERY_BEAT_SCHEDULE = {
    "hosts-deployments-recover-stale": {
        "task": "hosts.tasks.deployments_recover_stale",
        "schedule": MAILGATE_DEPLOY_LEASE,
    },
    "zones-check-all-domains": {
        "task": "zones.tasks.check_all_domains",
        "schedule": MAILGATE_DNS_CHECK_INTERVAL,
    },
    # OpenPGP: contact keys' certifications, twice a day (alerts come 30 days ahead).
    "keys-certifications-check": {
        "task": "keys.tasks.certifications_check",
        "schedule": 12 * 60 * 60,
    },
    "hosts-mailbox-usage-refresh": {
        "task": "hosts.tasks.mailbox_usage_refresh",
        "schedule": MAILGATE_USAGE_INTERVAL,
    },
    "certs-certificates-renew": {
        "task": "certs.tasks.certificates_renew",
        "schedule": MAILGATE_ACME_INTERVAL,
    },
    "gateway-status-refresh": {
        "task": "gateway.tasks.status_refresh",
        "schedule": MAILGATE_STATUS_INTERVAL,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.string("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = False
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# Every response's Content-Security-Policy (gateway.middleware): scripts, styles, images and
# connections from Mailgate itself only; the pages have no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# MAILGATE_HTTPS: the panel is reached over HTTPS only, through a proxy that terminates TLS and
# says so in X-Forwarded-Proto. Cookies are then sent over HTTPS only and browsers are told
# (HSTS) never to use plain HTTP for a year.
MAILGATE_HTTPS = env.boolean("MAILGATE_HTTPS", False)
if MAILGATE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
