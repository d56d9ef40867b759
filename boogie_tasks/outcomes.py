"""What a run's exception becomes: its record's state and fields, a retry, a log line."""

from __future__ import annotations

import datetime
import logging
import traceback
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from boogie_tasks.conf import settings
from boogie_tasks.exceptions import (
    InvalidResult,
    ObjectDeleted,
    TaskCanceled,
    TaskFailed,
    UnknownTask,
)
from boogie_tasks.jsonutil import cut
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus

if TYPE_CHECKING:
    from boogie_tasks.task import Task

__all__ = ["LOG_EXCERPT", "MAX_BACKOFF", "describe", "failure", "log", "retries", "retry_fields"]

logger = logging.getLogger("boogie_tasks")

# The longest wait between two attempts, in seconds.
MAX_BACKOFF = 3600.0
# The most characters of a message, a value or an error a log line carries.
LOG_EXCERPT = 1000
# Errors we raise on purpose: recorded as "<Type>: <message>", no traceback kept.
EXPECTED = (UnknownTask, ObjectDeleted, InvalidResult)


def failure(record: TaskRecord, exc: BaseException) -> tuple[str, dict[str, Any]]:
    """The final state and fields of a run that raised ``exc``, each bounded in size.

    The error and the traceback are cut (with a marker) at
    ``BOOGIE_TASKS_MAX_ERROR_LENGTH`` and ``BOOGIE_TASKS_MAX_TRACEBACK_LENGTH``,
    whatever the exception says.
    """
    if isinstance(exc, TaskCanceled):
        return TaskStatus.CANCELED, {}  # the cancel wrote its reason
    if isinstance(exc, TaskFailed):
        fields = {"error": str(exc)}
    elif isinstance(exc, EXPECTED):
        fields = {"error": describe(exc)}
    elif isinstance(exc, SoftTimeLimitExceeded):
        limit = record.options.get("celery", {}).get("soft_time_limit")
        fields = {
            "error": f"TimeLimitExceeded: the run went past its time limit of {limit} s",
            "traceback": _traceback(exc),
        }
    else:
        fields = {"error": describe(exc), "traceback": _traceback(exc)}
    fields["error"] = cut(fields["error"], int(settings.MAX_ERROR_LENGTH))
    if "traceback" in fields:
        fields["traceback"] = cut(fields["traceback"], int(settings.MAX_TRACEBACK_LENGTH))
    return TaskStatus.FAILED, fields


def retries(task: Task[Any, Any], record: TaskRecord, exc: BaseException) -> bool:
    """Whether this failure is tried again: attempts left, and an exception to retry."""
    return (
        record.attempts < record.max_attempts
        and isinstance(exc, task.retry_on)
        and not isinstance(exc, (TaskFailed, TaskCanceled, SoftTimeLimitExceeded, *EXPECTED))
    )


def retry_fields(task: Task[Any, Any], record: TaskRecord) -> dict[str, Any]:
    """The next attempt waits its backoff and starts its progress afresh."""
    delay = min(task.retry_backoff * 2 ** (record.attempts - 1), MAX_BACKOFF)
    return {
        "run_at": timezone.now() + datetime.timedelta(seconds=delay),
        "progress_current": 0,
        "progress_total": None,
        "progress_message": "",
    }


def log(
    record: TaskRecord, status: str, fields: dict[str, Any], exc: BaseException, retried: bool
) -> None:
    """Log a failed run as it deserves, with at most an excerpt of what it said."""
    name, pk = record.task_name, record.pk
    excerpt = cut(fields.get("error", ""), LOG_EXCERPT)
    if isinstance(exc, TaskFailed):
        logger.info("task failed task=%s record=%s error=%s", name, pk, excerpt)
    elif isinstance(exc, EXPECTED):
        logger.error("task failed task=%s record=%s error=%s", name, pk, excerpt)
    elif isinstance(exc, SoftTimeLimitExceeded):
        limit = record.options.get("celery", {}).get("soft_time_limit")
        logger.error("task timed out task=%s record=%s limit=%s", name, pk, limit)
    elif status == TaskStatus.CANCELED:
        pass  # as asked: the record says it
    elif len(fields.get("error", "")) <= LOG_EXCERPT:
        logger.error("task raised task=%s record=%s", name, pk, exc_info=exc)
    else:  # too long to log whole: its start, and the traceback's
        traceback_excerpt = cut(fields.get("traceback", ""), LOG_EXCERPT * 4)
        logger.error(
            "task raised task=%s record=%s error=%s\n%s", name, pk, excerpt, traceback_excerpt
        )
    if retried:
        logger.info(
            "will retry task=%s record=%s attempt=%s of %s at=%s",
            name, pk, record.attempts + 1, record.max_attempts, fields["run_at"].isoformat(),
        )  # fmt: skip


def describe(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"``, or the type alone for an empty message."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
