"""The Celery tasks: `boogie_tasks.run` (claim, execute, finish), the dispatcher, spawn."""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from celery import current_app, shared_task
from celery.exceptions import Reject
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.db import models, router, transaction
from django.utils import timezone

from boogie_tasks import outcomes, registry, resilience, transitions
from boogie_tasks.conf import settings
from boogie_tasks.exceptions import (
    InvalidState,
    ObjectDeleted,
)
from boogie_tasks.heartbeat import heartbeat
from boogie_tasks.jsonutil import short, to_json
from boogie_tasks.models import TaskRecord
from boogie_tasks.progress import ProgressWriter, _writer
from boogie_tasks.signals import send, task_finished, task_started
from boogie_tasks.status import TaskStatus

if TYPE_CHECKING:
    from boogie_tasks.task import Task

__all__ = ["cancel", "execute", "load_object", "run", "run_here", "worker_id"]

logger = logging.getLogger("boogie_tasks")


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
    if not _is_record_id(record_id):
        logger.warning("dropped message: not a record id: %s", short(record_id))
        return "DROPPED"
    # Celery's shadow name is the task's: where the task says its object's model,
    # the claim reads the object too.
    task = registry.find(getattr(run.request, "shadow", None) or "")
    using = router.db_for_write(TaskRecord)
    resilience.drop_if_broken(using)
    try:
        record, obj = resilience.retrying(
            lambda: _claim(record_id, task), using, CLAIM_RETRY_SECONDS, f"claim of {record_id}"
        )
    except resilience.CONNECTION_ERRORS:
        # Not claimed, not lost: the message goes back to the queue for a next try.
        logger.warning("claim failed, message requeued record=%s", record_id)
        raise Reject("the database is unreachable", requeue=True) from None
    early = _early_by(record_id) if record is None else None
    if early is not None:
        # An ETA message may fire a hair before run_at by this clock: wait, then claim.
        time.sleep(early)
        record, obj = _claim(record_id, task)
    if record is None:
        logger.info("dropped message record=%s: not ready, not due, or already claimed", record_id)
        return "DROPPED"
    execute(record, obj=obj)
    return str(record.status)


# How long a claim is tried again while the database is away, before its
# message goes back to the queue.
CLAIM_RETRY_SECONDS = 10.0


def _is_record_id(value: Any) -> bool:
    """Whether a message's argument can be a record's id (a UUID as text), before any query."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _claim(record_id: str, task: Task[Any, Any] | None) -> tuple[TaskRecord | None, Any]:
    model = task.model if task is not None else None
    if model is None:
        return transitions.claim(record_id, worker=worker_id()), None
    content_type = ContentType.objects.get_for_model(model).pk
    return transitions.claim_with_object(
        record_id, worker=worker_id(), model=model, content_type=content_type
    )


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
    resilience.drop_if_broken(router.db_for_write(TaskRecord))
    return str(recurring.spawn(task, content_type_id, object_id, args, kwargs, options).pk)


@shared_task(name="boogie_tasks.dispatch", ignore_result=True)
def dispatch() -> dict[str, int]:
    """Start due runs, publish unclaimed READY records again, fail lost runs."""
    from boogie_tasks.dispatch import dispatch as sweep

    # A tick after a database restart must not fail on the connection it dropped:
    # each sweep is fenced, so one sent again on a fresh connection is safe.
    using = router.db_for_write(TaskRecord)
    resilience.drop_if_broken(using)
    return resilience.retrying(sweep, using, 5.0, "dispatcher tick")


def _early_by(record_id: Any, limit: float = 2.0) -> float | None:
    """Seconds until a READY record is due, if it is due within ``limit``; else None."""
    run_at = (
        TaskRecord.objects.ready().filter(pk=record_id).values_list("run_at", flat=True).first()
    )
    if run_at is None:
        return None
    early = (run_at - timezone.now()).total_seconds()
    return early if 0 < early <= limit else None


def load_object(record: TaskRecord) -> models.Model:
    """Fetch the record's object afresh, by primary key, from the database its model reads."""
    content_type = ContentType.objects.get_for_id(record.content_type_id)
    model = content_type.model_class()
    if model is None:
        raise ObjectDeleted(
            f"{record.task_name}: model {content_type.app_label}.{content_type.model} "
            "is no longer installed"
        )
    try:
        # The base manager, as Django uses for related objects: no custom filtering.
        return model._base_manager.db_manager(router.db_for_read(model)).get(pk=record.object_id)
    except ObjectDoesNotExist:
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
    using = router.db_for_write(TaskRecord)
    in_transaction = transaction.get_connection(using).in_atomic_block
    # Inside the caller's transaction, a savepoint lets a failed body roll back
    # its own writes without breaking the transaction we record the failure in.
    body_atomic = (
        functools.partial(transaction.atomic, using=using) if in_transaction else nullcontext
    )
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
            limit = int(settings.MAX_RESULT_SIZE)
            result = to_json(value, task=record.task_name, what="result", limit=limit)
        except BaseException as exc:
            _failed(record, task, writer, exc, retry=not reraise)
            # KeyboardInterrupt, SystemExit and the like always go on up.
            if reraise or not isinstance(exc, Exception):
                raise
            return None
        # error: a cancel asked too late to stop the run wrote its reason there.
        fields: dict[str, Any] = {**writer.fields(), "result": result, "error": ""}
        if writer.total is not None:
            fields["progress_current"] = max(writer.current, writer.total)
        _finish(record, TaskStatus.SUCCESSFUL, fields)
        return result
    finally:
        heartbeat.unwatch(writer)
        _writer.reset(token)


def _failed(
    record: TaskRecord,
    task: Task[Any, Any] | None,
    writer: ProgressWriter,
    exc: BaseException,
    retry: bool,
) -> None:
    """Finish a run that raised ``exc``: FAILED, CANCELED or a retry; log it as it deserves."""
    status, fields = outcomes.failure(record, exc)
    fields = {**writer.fields(), **fields}
    retried = retry and task is not None and outcomes.retries(task, record, exc)
    if retried:
        assert task is not None
        status = TaskStatus.SCHEDULED
        fields.update(outcomes.retry_fields(task, record))
    if _finish(record, status, fields, exc):  # else cancelled with terminate, or taken over
        outcomes.log(record, status, fields, exc, retried)


def _finish(
    record: TaskRecord, status: str, fields: dict[str, Any], exc: BaseException | None = None
) -> bool:
    """Write the attempt's end (``transitions.finish``) and say so; False if no longer ours.

    While the database is away, the write is tried again for up to
    ``BOOGIE_TASKS_STALE_AFTER`` (the run stays watched by the heartbeat
    meanwhile); past that the record is left to lost-run recovery.
    """
    attempt, using, tries = record.attempts, router.db_for_write(TaskRecord), 0

    def write() -> bool:
        nonlocal tries
        tries += 1
        return transitions.finish(record, status, fields, exc)

    try:
        written = resilience.retrying(
            write, using, float(settings.STALE_AFTER), f"finish of {record.pk}"
        )
    except resilience.CONNECTION_ERRORS:
        logger.error(
            "finish lost task=%s record=%s status=%s: the database stayed unreachable; "
            "lost-run recovery takes the record over", record.task_name, record.pk, status,
        )  # fmt: skip
        return False
    if not written:
        try:
            record.refresh_from_db()
        except TaskRecord.DoesNotExist:
            return False  # deleted while it ran (clean(finished=False)): nothing to show
        # A try whose answer was lost may have written it: then it is ours.
        written = tries > 1 and record.status == status and record.attempts == attempt
    if written:
        if status in TaskStatus.final():
            send(task_finished, record=record, status=status)
        return True
    if record.status == TaskStatus.CANCELED:
        # cancel(terminate=True) made it final before the run ended: as asked.
        logger.info("run ended after cancel task=%s record=%s", record.task_name, record.pk)
    else:
        logger.warning(
            "finish dropped task=%s record=%s attempt=%s status=%s: the run is no longer current",
            record.task_name, record.pk, attempt, status,
        )  # fmt: skip
    return False


def run_here(record: TaskRecord, *, reraise: bool = True) -> Any:
    """Run a paused, scheduled or queued record in this process; see ``TaskRecord.run``.

    ``reraise=False`` behaves as a worker: failures are only recorded, and retried.
    """
    claimed = transitions.claim(record.pk, worker=worker_id(), waiting=True)
    if claimed is None:
        record.refresh_from_db(fields=["status"])
        raise InvalidState(
            f"{record.task_name} record {record.pk} is {record.status}; only a "
            "PAUSED, SCHEDULED or READY record can be run"
        )
    for field in TaskRecord._meta.concrete_fields:
        setattr(record, field.attname, getattr(claimed, field.attname))
    # The task is looked up inside execute(), so an unknown one is recorded as FAILED too.
    return execute(record, reraise=reraise)


def cancel(record: TaskRecord, terminate: bool = False, reason: str = "") -> bool:
    """Cancel a waiting record at once, or ask a running one to stop.

    With ``terminate``, a running record is CANCELED at once and Celery is asked
    to kill the worker process running it (the message's id is the record's).
    """
    outcome = transitions.cancel(record, terminate=terminate, reason=reason)
    if outcome == "canceled":
        if terminate and record.cancel_requested:
            current_app.control.revoke(str(record.pk), terminate=True, signal="SIGTERM")
            logger.info("terminate requested task=%s record=%s", record.task_name, record.pk)
        send(task_finished, record=record, status=record.status)
    return outcome is not None
