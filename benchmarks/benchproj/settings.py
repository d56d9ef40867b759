"""Settings of the benchmark project: PostgreSQL and Redis, as in production.

Environment:
    BOOGIE_BENCH_DATABASE_URL  postgresql://user:password@host:port/name
                               (default postgresql://postgres@127.0.0.1:5432/boogie_bench)
    BOOGIE_BENCH_REDIS_URL     redis://host:port/db, the broker and the completion
                               counter (default redis://127.0.0.1:6379/1, not db 0 of the tests)
    BOOGIE_BENCH_DB_REUSE_MAX  set by throughput.py in the worker of the "reused" mode
    BOOGIE_BENCH_DB_POOL       set by throughput.py in the worker of the "pool" mode:
                               Django's connection pool (needs psycopg[pool])
    BOOGIE_BENCH_CLAIM_UNFLUSHED
                               set (to 1) for BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT = False
    BOOGIE_BENCH_SERVER_SIDE_BINDING
                               set (to 1) for the caller and the workers alike:
                               psycopg's server-side binding, and its prepared
                               statements from a statement's 5th use on a connection
"""

import os
from urllib.parse import unquote, urlparse

DATABASE_URL = os.environ.get(
    "BOOGIE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/boogie_bench"
)
REDIS_URL = os.environ.get("BOOGIE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
QUEUE = "boogie_bench"

SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_beat",
    "django_celery_results",
    "boogie_tasks",
    "benchproj",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(url: str) -> dict:
    parts = urlparse(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"BOOGIE_BENCH_DATABASE_URL must be a postgresql:// URL, not {url!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "boogie_bench",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


# Out of the box: no CONN_MAX_AGE, no pool; Celery's Django fixup closes the
# connections around every task unless CELERY_DB_REUSE_MAX is set.
DATABASES = {"default": _database(DATABASE_URL)}
OPTIONS: dict = DATABASES["default"].setdefault("OPTIONS", {})
if os.environ.get("BOOGIE_BENCH_DB_POOL"):
    OPTIONS["pool"] = True
if os.environ.get("BOOGIE_BENCH_CLAIM_UNFLUSHED"):
    BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT = False
if os.environ.get("BOOGIE_BENCH_SERVER_SIDE_BINDING"):
    # What docs/performance.rst tells a project to try: psycopg then prepares
    # a statement it has run prepare_threshold times on a connection.
    OPTIONS.update(server_side_binding=True, prepare_threshold=5)

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = QUEUE
# django-celery-results for its peer; the bare peer and boogie_tasks ignore results.
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
if os.environ.get("BOOGIE_BENCH_DB_REUSE_MAX"):
    CELERY_DB_REUSE_MAX = int(os.environ["BOOGIE_BENCH_DB_REUSE_MAX"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"boogie_tasks": {"handlers": ["console"], "level": "WARNING"}},
}
