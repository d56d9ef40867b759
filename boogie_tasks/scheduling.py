"""Time: when a scheduled run is due, and the one beat entry that drives the clock."""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from boogie_tasks.conf import settings
from boogie_tasks.exceptions import InvalidTaskArguments

DISPATCHER_NAME = "boogie_tasks.dispatch"


def resolve_when(task_name: str, when: Any) -> datetime.datetime:
    """Turn seconds from now, a ``timedelta`` or a ``datetime`` into an aware time.

    A naive ``datetime`` is taken in the current time zone.
    """
    now = timezone.now()
    try:
        if isinstance(when, datetime.datetime):
            if not django_settings.USE_TZ:
                return timezone.make_naive(when) if timezone.is_aware(when) else when
            if timezone.is_naive(when):
                return timezone.make_aware(when, timezone.get_current_timezone())
            return when
        if isinstance(when, datetime.timedelta):
            return now + when
        if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
            return now + datetime.timedelta(seconds=when)
    except OverflowError:
        raise InvalidTaskArguments(f"{task_name}: when {when!r} is too far away") from None
    raise InvalidTaskArguments(
        f"{task_name}: when must be seconds from now (int or float), a timedelta "
        f"or a datetime, not {when!r}"
    )


class QuietTicks(logging.Filter):
    """Drop Celery's INFO lines about the dispatcher's ticks, which would drown a log.

    At ``-l INFO`` a worker logs every task it receives and finishes, and beat
    every entry it sends: the dispatcher's ticks alone made two lines a second.
    The dispatcher logs at INFO itself whenever a tick moves a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        data = getattr(record, "data", None)  # the worker's "received" and "succeeded"
        if isinstance(data, dict) and data.get("name") == DISPATCHER_NAME:
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and args[0] == DISPATCHER_NAME)  # beat's "Sending due task"


# The loggers of those lines: the worker's trace and strategy, and beat.
TICK_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


def quiet_ticks() -> None:
    """Install ``QuietTicks`` on Celery's loggers once (from ``AppConfig.ready``)."""
    for name in TICK_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(existing, QuietTicks) for existing in target.filters):
            target.addFilter(QuietTicks())


def ensure_dispatcher(using: str = "default", **kwargs: Any) -> Any:
    """Create (or update) the django-celery-beat entry that runs the dispatcher.

    Connected to ``post_migrate``; an entry an admin disabled stays disabled.
    Only on the database beat reads its entries from.
    """
    from django.db import connections, router
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if router.db_for_write(PeriodicTask) != using:
        return None
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return None  # `migrate boogie_tasks` alone: the next full migrate makes it
    every = dispatch_every()
    interval, _ = IntervalSchedule.objects.using(using).get_or_create(
        every=every, period=IntervalSchedule.SECONDS
    )
    entry, created = PeriodicTask.objects.using(using).get_or_create(
        name=DISPATCHER_NAME,
        defaults={
            "task": DISPATCHER_NAME,
            "interval": interval,
            # Ticks nobody consumed (no worker running) expire instead of piling up.
            "expire_seconds": max(2, 2 * every),
            "description": "Starts due scheduled runs, publishes READY records again "
            "and fails runs whose worker was lost (boogie_tasks).",
        },
    )
    expire = max(2, 2 * every)
    if not created and (
        entry.interval_id != interval.pk
        or entry.task != DISPATCHER_NAME
        or entry.expire_seconds != expire
    ):
        entry.interval, entry.task, entry.expire_seconds = interval, DISPATCHER_NAME, expire
        entry.save(update_fields=["interval", "task", "expire_seconds"])
    return entry


def dispatch_every() -> int:
    """The dispatcher's interval in whole seconds (beat's unit), at least 1."""
    return max(1, round(float(settings.DISPATCH_INTERVAL)))


SPAWN_NAME = "boogie_tasks.spawn"
_CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def beat_schedule(task_name: str, schedule: Any) -> tuple[str, Any]:
    """Turn a cron string, a ``timedelta`` or a Celery ``crontab`` into a beat schedule row.

    Returns ``("interval", IntervalSchedule)`` or ``("crontab", CrontabSchedule)``.
    """
    from celery.schedules import crontab
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if isinstance(schedule, datetime.timedelta):
        seconds = schedule.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise InvalidTaskArguments(
                f"{task_name}: an every() interval must be a whole number of seconds, "
                f"at least 1, not {schedule!r}"
            )
        row, _ = IntervalSchedule.objects.get_or_create(
            every=int(seconds), period=IntervalSchedule.SECONDS
        )
        return "interval", row
    if isinstance(schedule, str):
        parts = schedule.split()
        if len(parts) != 5:
            raise InvalidTaskArguments(
                f"{task_name}: a cron string has 5 fields (minute hour day month weekday), "
                f"not {schedule!r}"
            )
        spec = dict(zip(_CRON_FIELDS, parts, strict=True))
        tz: Any = timezone.get_current_timezone()
    elif isinstance(schedule, crontab):
        spec = {name: getattr(schedule, f"_orig_{name}") for name in _CRON_FIELDS}
        tz = schedule.tz or timezone.get_current_timezone()
    else:
        raise InvalidTaskArguments(
            f"{task_name}: schedule must be a cron string, a timedelta or a Celery crontab, "
            f"not {schedule!r}"
        )
    try:
        crontab(**spec)
    except ValueError as exc:
        raise InvalidTaskArguments(f"{task_name}: bad cron schedule {schedule!r}: {exc}") from None
    row, _ = CrontabSchedule.objects.get_or_create(
        **{k: str(v) for k, v in spec.items()}, timezone=str(tz)
    )
    return "crontab", row
