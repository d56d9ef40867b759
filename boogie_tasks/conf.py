"""``BOOGIE_TASKS_*`` settings with their defaults, read lazily."""

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Least time, in seconds, between two progress writes of one run.
    "PROGRESS_INTERVAL": 1.0,
    # How often beat runs the dispatcher.
    "DISPATCH_INTERVAL": 1.0,
    # A running record's heartbeat; a progress write counts as one.
    "HEARTBEAT_INTERVAL": 10.0,
    # A RUNNING record whose heartbeat is older than this lost its worker.
    "STALE_AFTER": 60.0,
    # A READY record not claimed for this long is published again.
    "REPUBLISH_AFTER": 30.0,
    # Dotted path of a function (user, record, action) -> bool for the HTTP views.
    "PERMISSION": None,
    # Publishing: how often a failed publish is retried before the outbox takes over.
    "PUBLISH_MAX_RETRIES": 2,
    # What .delayed() does when the broker cannot be reached: "retry", "run" or "fail".
    "ON_BROKER_ERROR": "retry",
    # The most characters of JSON one argument, and a result, may take.
    "MAX_ARGUMENT_SIZE": 1_000_000,
    "MAX_RESULT_SIZE": 10_000_000,
    # The most characters kept of a run's error and traceback (cut with a marker).
    "MAX_ERROR_LENGTH": 10_000,
    "MAX_TRACEBACK_LENGTH": 100_000,
    # PostgreSQL: a worker's claim waits for the disk like every commit (False: it
    # does not, for more runs a second; see docs/guarantees.rst).
    "CLAIM_SYNCHRONOUS_COMMIT": True,
}


class Settings:
    """Read ``BOOGIE_TASKS_<NAME>`` from Django's settings at access time.

    Reading on every access (not at import) keeps ``override_settings`` working.
    """

    prefix = "BOOGIE_TASKS_"

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"boogie_tasks has no setting {self.prefix}{name}")
        return getattr(django_settings, self.prefix + name, DEFAULTS[name])


settings = Settings()
