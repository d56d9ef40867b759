"""The Celery task ``boogie_tasks.run``: claiming, running and finishing a record."""

from __future__ import annotations

import datetime
import functools
import logging
import os
import socket
import time
import traceback
from collections.abc import Iterable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.contenttypes.models import ContentType
from django.db import DataError, connection, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from boogie_tasks import registry, statements
from boogie_tasks.exceptions import (
    InvalidResult,
    InvalidState,
    ObjectDeleted,
    TaskCanceled,
    TaskFailed,
    UnknownTask,
)
from boogie_tasks.heartbeat import heartbeat
from boogie_tasks.jsonutil import to_json
from boogie_tasks.models import TaskRecord
from boogie_tasks.progress import ProgressWriter, _writer
from boogie_tasks.signals import send, task_finished, task_started
from boogie_tasks.status import TaskStatus

if TYPE_CHECKING:
    from boogie_tasks.task import Task

logger = logging.getLogger("boogie_tasks")

# The longest wait between two attempts, in seconds.
MAX_BACKOFF = 3600.0

# Errors we raise on purpose: recorded as "<Type>: <message>", no traceback kept.
_EXPECTED = (UnknownTask, ObjectDeleted, InvalidResult)


def worker_id() -> str:
    """Host and process id of this process, for the record's ``worker`` field."""
    return f"{_hostname()}:{os.getpid()}"


@functools.lru_cache(maxsize=1)
def _hostname() -> str:
    return socket.gethostname()


@shared_task(
    name="boogie_tasks.run", ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def run(record_id: str) -> str:
    """Claim the record and run its task; a message for a record not READY is dropped.

    Returns the final status, so that Celery's own log line tells how it went.
    """
    # The message carries only the record's id, and Celery's shadow name: the task's.
    task_name = getattr(run.request, "shadow", None)
    record, obj = _claim_due(record_id, task_name)
    early = _early_by(record_id) if record is None else None
    if early is not None:
        # An ETA message may fire a hair before run_at by this clock: wait, then claim.
        time.sleep(early)
        record, obj = _claim_due(record_id, task_name)
    if record is None:
        logger.info("dropped message record=%s: not ready, not due, or already claimed", record_id)
        return "DROPPED"
    execute(record, obj=obj)
    return str(record.status)


@shared_task(name="boogie_tasks.spawn", ignore_result=True)
def spawn(
    task_name: str,
    content_type_id: int,
    object_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> str:
    """One firing of a recurring run (``fn.every()``): a new record, sent to a worker.

    ``options`` are those of the ``using()`` copy that made the entry.
    """
    from boogie_tasks import recurring

    task = registry.get(task_name)
    return str(recurring.spawn(task, content_type_id, object_id, args, kwargs, options).pk)


@shared_task(name="boogie_tasks.dispatch", ignore_result=True)
def dispatch() -> dict[str, int]:
    """Start due runs, publish unclaimed READY records again, fail lost runs."""
    from boogie_tasks.dispatch import dispatch as sweep

    return sweep()


# Claiming


def _early_by(record_id: Any, limit: float = 2.0) -> float | None:
    """Seconds until a READY record is due, if it is due within ``limit``; else None."""
    run_at = (
        TaskRecord.objects.ready().filter(pk=record_id).values_list("run_at", flat=True).first()
    )
    if run_at is None:
        return None
    early = (run_at - timezone.now()).total_seconds()
    return early if 0 < early <= limit else None


# (database, task name) -> (content type id, model) of that task's last object in
# this process: the claim of its next run reads an object of that model with it.
_expected: dict[tuple[str, str], tuple[int, type[models.Model]]] = {}


def _claim_due(record_id: Any, task_name: str | None) -> tuple[TaskRecord | None, Any]:
    """Claim a READY, due record for a worker's run; return it, and its object if read with it.

    Where the task's last object in this process was of a model that
    ``statements.claim_with_object`` can read, the claim reads the object in
    the same statement: one round trip fewer. For a record of another model
    (or whose object is gone) the object is None and ``execute`` fetches it.
    """
    using = router.db_for_write(TaskRecord)
    expected = _expected.get((using, task_name)) if task_name else None
    if expected is None:
        return claim(record_id, [TaskStatus.READY], due_only=True), None
    now = timezone.now()
    content_type_id, model = expected
    try:
        return statements.claim_with_object(
            using, record_id, [TaskStatus.READY], now, _claim_values(now), content_type_id, model
        )
    except DataError:
        # An object_id that this model's primary key cannot take (written by
        # hand): the statement changed nothing. Claimed without the object,
        # the run fails on the fetch and says why.
        return claim(record_id, [TaskStatus.READY], due_only=True), None


def _claim_values(now: datetime.datetime) -> dict[str, Any]:
    return {
        "status": TaskStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker_id(),
        "error": "",
        "traceback": "",
        "cancel_requested": False,
    }


def claim(record_id: Any, statuses: Iterable[str], *, due_only: bool = False) -> TaskRecord | None:
    """Move the record from one of ``statuses`` to RUNNING and return it, or None.

    One conditional UPDATE bumps ``attempts`` (the fencing token of the run);
    where the database has ``UPDATE ... RETURNING`` the row comes back with it.
    """
    now = timezone.now()
    values = _claim_values(now)
    statuses = list(statuses)
    using = router.db_for_write(TaskRecord)
    if statements.can_return(using):
        return statements.claim_returning(
            using, record_id, statuses, now if due_only else None, values
        )
    due = Q(run_at__isnull=True) | Q(run_at__lte=now) if due_only else Q()
    pending = TaskRecord.objects.fenced(
        record_id, due, status__in=statuses, attempts__lt=F("max_attempts")
    )
    if not pending.update(attempts=F("attempts") + 1, **values):
        return None
    return TaskRecord.objects.get(pk=record_id)


# Running


def load_object(record: TaskRecord) -> models.Model:
    """Fetch the record's object afresh, by primary key."""
    content_type = ContentType.objects.get_for_id(record.content_type_id)
    model = content_type.model_class()
    if model is None:
        raise ObjectDeleted(
            f"{record.task_name}: model {content_type.app_label}.{content_type.model} "
            "is no longer installed"
        )
    using = router.db_for_write(TaskRecord)
    if statements.can_claim_with_object(using, model):
        _expected[using, record.task_name] = (record.content_type_id, model)
    try:
        # The base manager, as Django uses for related objects: no custom filtering.
        return statements.get_object(model, record.object_id, router.db_for_read(model))
    except model.DoesNotExist:
        raise ObjectDeleted(
            f"{model._meta.label} with pk={record.object_id!r} no longer exists "
            f"(task {record.task_name})"
        ) from None


def execute(
    record: TaskRecord,
    task: Task[Any, Any] | None = None,
    obj: models.Model | None = None,
    *,
    reraise: bool = False,
) -> Any:
    """Run a claimed (RUNNING) record and finish it; return the JSON result.

    Any failure is recorded; with ``reraise`` the exception is raised again
    afterwards (``fn.call()`` and ``record.run()``), otherwise it is logged.
    """
    writer = ProgressWriter(record.pk, record.attempts, record.task_name)
    token = _writer.set(writer)
    in_transaction = connection.in_atomic_block
    # Inside the caller's transaction, a savepoint lets a failed body roll back
    # its own writes without breaking the transaction we record the failure in.
    body_atomic = transaction.atomic if in_transaction else nullcontext
    if not in_transaction:  # a run nobody else can see yet needs no heartbeat
        heartbeat.watch(writer)
    send(task_started, record=record)
    try:
        try:
            task = task or registry.get(record.task_name)
            if obj is None:
                obj = load_object(record)
            with body_atomic():
                value = task.func(obj, *record.args, **record.kwargs)
            result = to_json(value, task=record.task_name, what="result")
        except BaseException as exc:
            status, fields = _failure(record, exc)
            if not reraise and task is not None and _retries(task, record, exc):
                status, fields = TaskStatus.SCHEDULED, _retry_fields(task, record, fields)
                logger.info(
                    "will retry task=%s record=%s attempt=%s of %s at=%s",
                    record.task_name, record.pk, record.attempts + 1, record.max_attempts,
                    fields["run_at"].isoformat(),
                )  # fmt: skip
            finish(record, status, writer, **fields)
            # KeyboardInterrupt, SystemExit and the like always go on up.
            if reraise or not isinstance(exc, Exception):
                raise
            return None
        finish(record, TaskStatus.SUCCESSFUL, writer, result=result)
        return result
    finally:
        heartbeat.unwatch(writer)
        _writer.reset(token)


def _failure(record: TaskRecord, exc: BaseException) -> tuple[str, dict[str, Any]]:
    """The final state and fields of a run that raised ``exc``, logged as it deserves."""
    if isinstance(exc, TaskCanceled):
        return TaskStatus.CANCELED, {}  # the status says it; no error, as for a waiting one
    if isinstance(exc, TaskFailed):
        logger.info("task failed task=%s record=%s error=%s", record.task_name, record.pk, exc)
        return TaskStatus.FAILED, {"error": str(exc)}
    if isinstance(exc, _EXPECTED):
        logger.error("task failed task=%s record=%s error=%s", record.task_name, record.pk, exc)
        return TaskStatus.FAILED, {"error": _describe(exc)}
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = record.options.get("celery", {}).get("soft_time_limit")
        logger.error(
            "task timed out task=%s record=%s limit=%s", record.task_name, record.pk, limit
        )
        error = f"TimeLimitExceeded: the run went past its time limit of {limit} s"
        return TaskStatus.FAILED, {"error": error, "traceback": traceback.format_exc()}
    logger.exception("task raised task=%s record=%s", record.task_name, record.pk)
    return TaskStatus.FAILED, {"error": _describe(exc), "traceback": traceback.format_exc()}


def _retries(task: Task[Any, Any], record: TaskRecord, exc: BaseException) -> bool:
    """Whether this failure is tried again: attempts left, and an exception to retry."""
    return (
        record.attempts < record.max_attempts
        and isinstance(exc, task.retry_on)
        and not isinstance(exc, (TaskFailed, TaskCanceled, SoftTimeLimitExceeded, *_EXPECTED))
    )


def _retry_fields(
    task: Task[Any, Any], record: TaskRecord, fields: dict[str, Any]
) -> dict[str, Any]:
    """The attempt's error goes to the history; the next attempt waits its backoff."""
    now = timezone.now()
    delay = min(task.retry_backoff * 2 ** (record.attempts - 1), MAX_BACKOFF)
    entry = {"attempt": record.attempts, "error": fields["error"], "at": now.isoformat()}
    return {
        **fields,
        "history": [*record.history, entry],
        "run_at": now + datetime.timedelta(seconds=delay),
        # The next attempt starts its progress afresh.
        "progress_current": 0,
        "progress_total": None,
        "progress_message": "",
    }


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def finish(record: TaskRecord, status: str, writer: ProgressWriter, **fields: Any) -> bool:
    """Write the final state of this attempt, fenced by status and attempts.

    The last progress values fold into this one UPDATE. Returns False when the
    run was no longer ours (cancelled, or taken over after being given up).
    """
    fields = {**writer.fields(), **fields, "status": status}
    if status in TaskStatus.final():
        fields["finished_at"] = timezone.now()
    if status == TaskStatus.SUCCESSFUL and writer.total is not None:
        fields["progress_current"] = max(writer.current, writer.total)
    written = statements.update_fenced(
        router.db_for_write(TaskRecord),
        record.pk,
        {"status": TaskStatus.RUNNING, "attempts": record.attempts},
        fields,
    )
    if written:
        for name, value in fields.items():
            setattr(record, name, value)
        if status in TaskStatus.final():
            send(task_finished, record=record, status=status)
        return True
    logger.warning(
        "finish dropped task=%s record=%s attempt=%s status=%s: the run is no longer current",
        record.task_name, record.pk, record.attempts, status,
    )  # fmt: skip
    try:
        record.refresh_from_db()
    except TaskRecord.DoesNotExist:
        pass  # deleted while it ran (clean(finished=False)): nothing to show
    return False


def run_here(record: TaskRecord, *, reraise: bool = True) -> Any:
    """Run a paused, scheduled or queued record in this process; see ``TaskRecord.run``.

    ``reraise=False`` behaves as a worker: failures are only recorded, and retried.
    """
    claimed = claim(record.pk, TaskStatus.waiting())
    if claimed is None:
        record.refresh_from_db(fields=["status"])
        raise InvalidState(
            f"{record.task_name} record {record.pk} is {record.status}; only a "
            "PAUSED, SCHEDULED or READY record can be run"
        )
    _copy_state(claimed, record)
    # The task is looked up inside execute(), so an unknown one is recorded as FAILED too.
    return execute(record, reraise=reraise)


def _copy_state(source: TaskRecord, target: TaskRecord) -> None:
    for field in TaskRecord._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


# Cancelling


def cancel(record: TaskRecord, terminate: bool = False) -> bool:
    """Cancel a waiting record at once, or ask a running one to stop.

    With ``terminate``, a running record is CANCELED at once and Celery is asked
    to kill the worker process running it (the message's id is the record's).
    """
    now = timezone.now()
    if TaskRecord.objects.fenced(record.pk, status__in=list(TaskStatus.waiting())).update(
        status=TaskStatus.CANCELED, finished_at=now
    ):
        record.status, record.finished_at = TaskStatus.CANCELED, now
        send(task_finished, record=record, status=record.status)
        return True
    running = TaskRecord.objects.fenced(record.pk, status=TaskStatus.RUNNING)
    if terminate:
        # Final first: whatever the killed run would still write is fenced out.
        asked = running.update(status=TaskStatus.CANCELED, cancel_requested=True, finished_at=now)
        if asked:
            from celery import current_app

            current_app.control.revoke(str(record.pk), terminate=True, signal="SIGTERM")
            logger.info("terminate requested task=%s record=%s", record.task_name, record.pk)
    else:
        asked = running.update(cancel_requested=True)
    record.refresh_from_db(fields=["status", "cancel_requested", "finished_at"])
    if asked and record.status == TaskStatus.CANCELED:
        send(task_finished, record=record, status=record.status)
    return bool(asked)
