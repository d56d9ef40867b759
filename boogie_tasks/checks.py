"""System checks: settings that would make boogie_tasks slow or broken."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.checks import Error, Tags, Warning, register

from boogie_tasks.conf import DEFAULTS, settings


@register(Tags.compatibility)
def check_connection_reuse(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when Celery will close Django's connections around every task.

    Django's connection pool does not help: in prefork workers Celery closes
    the pool itself after every task unless CELERY_DB_REUSE_MAX is set.
    """
    if _db_reuse_max():
        return []
    return [
        Warning(
            "Celery closes Django's database connections before and after every task, "
            "so each run opens new ones (several times slower for short tasks).",
            hint="Set CELERY_DB_REUSE_MAX (e.g. 100) in your Celery configuration; "
            "Django's connection pool is not enough with prefork workers.",
            id="boogie_tasks.W001",
        )
    ]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Refuse BOOGIE_TASKS_* settings of the wrong type."""
    errors = []
    for name, default in DEFAULTS.items():
        if not isinstance(default, float):
            continue
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            errors.append(
                Error(
                    f"BOOGIE_TASKS_{name} must be a number of seconds >= 0, not {value!r}.",
                    id="boogie_tasks.E001",
                )
            )
    for name in (
        "MAX_ARGUMENT_SIZE",
        "MAX_RESULT_SIZE",
        "MAX_ERROR_LENGTH",
        "MAX_TRACEBACK_LENGTH",
    ):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 100:
            errors.append(
                Error(
                    f"BOOGIE_TASKS_{name} must be a whole number of characters >= 100, "
                    f"not {value!r}.",
                    id="boogie_tasks.E006",
                )
            )
    if not errors and float(settings.STALE_AFTER) <= float(settings.HEARTBEAT_INTERVAL):
        errors.append(
            Error(
                "BOOGIE_TASKS_STALE_AFTER must be longer than BOOGIE_TASKS_HEARTBEAT_INTERVAL, "
                "or every quiet run would be taken for lost.",
                id="boogie_tasks.E003",
            )
        )
    retries = settings.PUBLISH_MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        errors.append(
            Error(
                f"BOOGIE_TASKS_PUBLISH_MAX_RETRIES must be a whole number >= 0, not {retries!r}.",
                id="boogie_tasks.E001",
            )
        )
    synchronous = settings.CLAIM_SYNCHRONOUS_COMMIT
    if not isinstance(synchronous, bool):
        errors.append(
            Error(
                "BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT must be True or False, "
                f"not {synchronous!r}.",
                id="boogie_tasks.E005",
            )
        )
    policy = settings.ON_BROKER_ERROR
    if policy not in ("retry", "run", "fail"):
        errors.append(
            Error(
                f"BOOGIE_TASKS_ON_BROKER_ERROR must be 'retry', 'run' or 'fail', not {policy!r}.",
                id="boogie_tasks.E002",
            )
        )
    return errors


@register(Tags.database)
def check_unique_support(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """Warn when unique tasks exist but the database ignores partial unique constraints."""
    from django.db import connections

    from boogie_tasks import registry

    unique = sorted(name for name, made in registry.all_tasks().items() if made.unique)
    if not unique or not databases:
        return []
    return [
        Warning(
            f"Database '{alias}' ignores partial unique constraints, so unique=True is not "
            f"enforced for: {', '.join(unique)}.",
            hint="Use PostgreSQL or SQLite for the task records' database.",
            id="boogie_tasks.W002",
        )
        for alias in databases
        if not connections[alias].features.supports_partial_indexes
    ]


def _db_reuse_max() -> Any:
    if getattr(django_settings, "CELERY_DB_REUSE_MAX", None):
        return True
    # The project's Celery app may carry it under another namespace.
    from celery import current_app

    return current_app.conf.get("CELERY_DB_REUSE_MAX") or current_app.conf.get("DB_REUSE_MAX")
