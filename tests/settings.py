"""Settings of the test project: SQLite and an in-memory broker unless told otherwise.

Environment:
    BOOGIE_TEST_DATABASE_URL  postgresql://user@host:port/name to test on PostgreSQL
    BOOGIE_TEST_REDIS_URL     redis://... to run the worker tests on Redis too
    BOOGIE_TEST_AMQP_URL      amqp://... to run the worker tests on RabbitMQ too
    BOOGIE_TEST_WORKER        set by the tests in the worker processes they start:
                              use the test database, not the main one
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent
# One folder per test run, inherited by the worker processes it starts, so that
# two runs side by side never share a SQLite file.
os.environ.setdefault("BOOGIE_TEST_VAR", tempfile.mkdtemp(prefix="boogie-tests-"))
VAR_DIR = Path(os.environ["BOOGIE_TEST_VAR"])

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_celery_beat",
    "boogie_tasks",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(suffix: str = "") -> dict:
    """The test database; ``suffix`` names a second one (records in a database of their own)."""
    url = os.environ.get("BOOGIE_TEST_DATABASE_URL")
    if not url:
        test_file = str(VAR_DIR / f"test{suffix}.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": test_file if os.environ.get("BOOGIE_TEST_WORKER") else ":memory:",
            # A file, so that a worker process shares the test database.
            "TEST": {"NAME": test_file},
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    parts = urlparse(url)
    # A test database of this run's own, inherited by its worker processes.
    os.environ.setdefault("BOOGIE_TEST_DB_SUFFIX", str(os.getpid()))
    name = (
        f"{parts.path.lstrip('/') or 'boogie_tasks'}_{os.environ['BOOGIE_TEST_DB_SUFFIX']}{suffix}"
    )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": f"test_{name}" if os.environ.get("BOOGIE_TEST_WORKER") else name,
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 5432,
        "TEST": {"NAME": f"test_{name}"},
    }


# "tasks": only tests/test_databases.py uses it, routing the task records there.
DATABASES = {"default": _database(), "tasks": _database("_tasks")}

CELERY_BROKER_URL = os.environ.get("BOOGIE_TEST_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "boogie_tasks.transport:FilesystemTransport"
    _folder = os.environ["BOOGIE_TEST_BROKER_FOLDER"]
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _folder,
        "data_folder_out": _folder,
        "control_folder": _folder + "/control",
        "polling_interval": 0.05,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ROUTES = {"tests.testapp.tasks.routed": {"queue": "routed"}}
CELERY_DB_REUSE_MAX = 100
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

BOOGIE_TASKS_PROGRESS_INTERVAL = 0.2

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"boogie_tasks": {"handlers": ["console"], "level": "INFO"}},
}
