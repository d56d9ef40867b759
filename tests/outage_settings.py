"""Settings of the outage tests' processes: the database is a cluster of the test's own."""

import os
from urllib.parse import urlparse

from tests.settings import *  # noqa: F403

_url = urlparse(os.environ["BOOGIE_OUTAGE_DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username,
        "HOST": _url.hostname,
        "PORT": _url.port,
    }
}
CELERY_DB_REUSE_MAX = 100  # as the README recommends: the setting that used to break recovery
# A finish is tried again for up to STALE_AFTER: longer than the tests' 20 s outage.
BOOGIE_TASKS_STALE_AFTER = 40
