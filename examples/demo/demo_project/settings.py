"""Settings of the demo: a SQLite file and Celery's ``filesystem://`` broker, no server.

Both live in the repository's ``var/demo/`` folder, or in ``$BOOGIE_DEMO_VAR``.
"""

import os
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BOOGIE_DEMO_VAR") or DEMO_DIR.parent.parent / "var" / "demo")
BROKER_DIR = VAR_DIR / "broker"

SECRET_KEY = "demo-only-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_celery_beat",
    "boogie_tasks",
    "shop",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "demo.sqlite3",
        "OPTIONS": {
            # The worker's processes and the demo write at the same time: wait for
            # the lock rather than fail, and let readers go on while one writes (WAL).
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CELERY_BROKER_URL = "filesystem://"
# Kombu's filesystem transport, with messages written whole before a worker can see them.
CELERY_BROKER_TRANSPORT = "boogie_tasks.transport:FilesystemTransport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(BROKER_DIR / "queue"),
    "data_folder_out": str(BROKER_DIR / "queue"),
    "control_folder": str(BROKER_DIR / "control"),
    "polling_interval": 0.1,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Keep Django's database connection from one task to the next.
CELERY_DB_REUSE_MAX = 100

# Write progress up to five times a second, so that the bars move smoothly.
BOOGIE_TASKS_PROGRESS_INTERVAL = 0.2
