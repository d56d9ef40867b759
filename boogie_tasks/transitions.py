"""Every change of a record's status, each a fenced conditional write; nothing else writes one.

A record's life, and the function that writes each step::

    from                          to                            function
    (new)                         PAUSED, SCHEDULED, READY      create, create_many
    (new, .call())                RUNNING (attempt 1)           create
    PAUSED, SCHEDULED             READY                         enqueue
    SCHEDULED, due                READY                         take_due
    READY, never published        READY (error kept)            publish_failed ("retry")
    READY, publish failed         FAILED                        publish_failed ("fail")
    READY, unclaimed for a while  READY (published again)       take_unclaimed
    READY, due                    RUNNING (attempts + 1)        claim, claim_with_object (a worker)
    PAUSED, SCHEDULED, READY      RUNNING (attempts + 1)        claim (run here)
    RUNNING, same attempt         RUNNING (progress, heartbeat) write_progress, beat
    RUNNING, same attempt         SUCCESSFUL, FAILED, CANCELED  finish
    RUNNING, same attempt         SCHEDULED (a retry, run_at)   finish
    PAUSED, SCHEDULED, READY      CANCELED (reason kept)        cancel
    RUNNING                       RUNNING, cancel requested     cancel
    RUNNING                       CANCELED (terminate)          cancel
    RUNNING, heartbeat stale      SCHEDULED (retry), FAILED,    take_lost
                                  CANCELED (cancel requested)

A final state (SUCCESSFUL, FAILED, CANCELED) is never left. Every write of a
run after its claim is fenced by status and attempts (``querysets.fenced``):
a run given up for lost can never overwrite its successor. Each function
saves only its own fields and says whether it won (or returns what it moved),
so its caller decides what to tell and whom.

Every finished attempt adds an entry to the record's ``history``: see
``attempt_entry``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import DataError, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from boogie_tasks import sql
from boogie_tasks.exceptions import WorkerLost
from boogie_tasks.models import TaskRecord
from boogie_tasks.querysets import TaskRecordQuerySet
from boogie_tasks.status import TaskStatus

__all__ = [
    "attempt_entry", "beat", "cancel", "claim", "claim_with_object", "create", "database",
    "create_many", "enqueue", "finish", "publish_failed", "take_due", "take_lost",
    "take_unclaimed", "write_progress",
]  # fmt: skip

# The most rows one bulk move takes in one statement (the dispatcher's sweeps).
BATCH = 500

# Fields the dispatcher needs to publish a row it moved.
_PUBLISHED_FIELDS = (
    "id", "task_name", "queue", "priority", "options", "attempts", "max_attempts", "run_at",
    "history", "started_at", "worker", "cancel_requested",
)  # fmt: skip


def database() -> str:
    """The database the records are written to (the router's)."""
    return router.db_for_write(TaskRecord)


def _records() -> TaskRecordQuerySet:
    return TaskRecord.objects.using(database())


# Creating


def create(record: TaskRecord) -> TaskRecord:
    """INSERT a new record in the status it was built with (RUNNING: its first attempt)."""
    if record.status == TaskStatus.RUNNING:
        record.attempts = 1
        record.started_at = record.heartbeat_at = record.created_at
    sql.insert(record, database())
    return record


def create_many(records: Sequence[TaskRecord]) -> list[TaskRecord]:
    """INSERT many new records in one statement per batch (``bulk_create``)."""
    return TaskRecord.objects.using(database()).bulk_create(records, batch_size=BATCH)


# Waiting


def enqueue(record: TaskRecord) -> bool:
    """PAUSED or SCHEDULED → READY, due now."""
    now = timezone.now()
    moved = (
        _records()
        .fenced(record.pk, status__in=[TaskStatus.PAUSED, TaskStatus.SCHEDULED])
        .update(status=TaskStatus.READY, run_at=None, queued_at=now)
    )
    if moved:
        record.status, record.run_at, record.queued_at = TaskStatus.READY, None, now
    return bool(moved)


def publish_failed(record: TaskRecord, error: str, fail: bool) -> bool:
    """A READY record whose message did not leave: FAILED, or left for the outbox sweep.

    ``fail=False`` keeps it READY with the error (the claim clears it) and no
    ``queued_at``, so the dispatcher's next tick publishes it again.
    """
    ready = _records().fenced(record.pk, status=TaskStatus.READY)
    if fail:
        now = timezone.now()
        moved = ready.update(status=TaskStatus.FAILED, error=error, finished_at=now)
        if moved:
            record.status, record.error, record.finished_at = TaskStatus.FAILED, error, now
        return bool(moved)
    moved = ready.update(error=error, queued_at=None)
    if moved:
        record.error, record.queued_at = error, None
    return bool(moved)


# Running


def claim(record_id: Any, *, worker: str, waiting: bool = False) -> TaskRecord | None:
    """Start the record's next attempt (READY and due; with ``waiting``, any waiting state).

    Returns the record as the claim left it, or None when another claim won,
    the record is not (or not yet) to be started, or its attempts are used up.
    """
    using = database()
    now = timezone.now()
    statement = sql.CLAIM_WAITING if waiting else sql.CLAIM_READY
    if sql.can_return(using):
        return sql.claim(sql.configured(statement, using), using, record_id, now, worker)
    due = Q() if waiting else Q(run_at__isnull=True) | Q(run_at__lte=now)
    pending = TaskRecord.objects.using(using).fenced(
        record_id, due, status__in=sql.CLAIMS_FROM[statement], attempts__lt=F("max_attempts")
    )
    claimed = pending.update(
        status=TaskStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
        worker=worker, error="", traceback="", cancel_requested=False,
    )  # fmt: skip
    return TaskRecord.objects.using(using).get(pk=record_id) if claimed else None


def claim_with_object(
    record_id: Any, *, worker: str, model: type[models.Model], content_type: int
) -> tuple[TaskRecord | None, models.Model | None]:
    """A worker's ``claim`` that also reads the record's object, if it is a ``model``'s.

    One round trip where the database can (``sql.can_claim_with_object``);
    elsewhere, and for a record of another model or whose object is gone, the
    object is None and the caller fetches it.
    """
    using = database()
    # In a transaction a failed statement would break it: there, two round trips.
    if transaction.get_connection(using).in_atomic_block or not sql.can_claim_with_object(
        using, model
    ):
        return claim(record_id, worker=worker), None
    statement = sql.configured(sql.CLAIM_READY, using)
    try:
        return sql.claim_with_object(
            statement, using, record_id, timezone.now(), worker, model, content_type
        )
    except DataError:
        # An object_id the model's primary key cannot take (written by hand): the
        # statement changed nothing. Claimed alone, the run fails on the fetch, saying why.
        return claim(record_id, worker=worker), None


def _running(record_id: Any, attempts: int) -> TaskRecordQuerySet:
    return _records().fenced(record_id, status=TaskStatus.RUNNING, attempts=attempts)


def write_progress(record_id: Any, attempts: int, fields: dict[str, Any]) -> bool:
    """The progress columns and a heartbeat; False once the run was cancelled or taken over."""
    mine = _running(record_id, attempts).filter(cancel_requested=False)
    return bool(mine.update(heartbeat_at=timezone.now(), **fields))


def beat(record_id: Any, attempts: int) -> bool:
    """Only the heartbeat of a run that reports no progress for a while."""
    return bool(_running(record_id, attempts).update(heartbeat_at=timezone.now()))


def attempt_entry(
    record: TaskRecord, status: str, ended: datetime.datetime, exc: BaseException | None = None,
    error: str = "", traceback: str = "",
) -> dict[str, Any]:  # fmt: skip
    """One attempt in ``history``: when it ran, where, how it ended and, failed, why."""
    entry: dict[str, Any] = {
        "attempt": record.attempts,
        "status": status,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": ended.isoformat(),
        "worker": record.worker,
    }
    if exc is not None or error:
        kind = type(exc) if exc is not None else None
        entry["exception_class"] = f"{kind.__module__}.{kind.__qualname__}" if kind else ""
        entry["error"] = error
        entry["traceback"] = traceback
    return entry


def finish(
    record: TaskRecord, status: str, fields: dict[str, Any], exc: BaseException | None = None
) -> bool:
    """RUNNING → a final state, or SCHEDULED for a retry (``fields`` hold its ``run_at``).

    Fenced by the attempt: False when the run was no longer current (cancelled
    with ``terminate``, or given up for lost and taken over). The attempt is
    added to ``history``; the record in memory takes the written values.
    """
    now = timezone.now()
    ended = TaskStatus.FAILED if status == TaskStatus.SCHEDULED else status  # a retry: failed
    error, traceback = fields.get("error"), fields.get("traceback", "")
    entry = attempt_entry(record, ended, now, exc, error or "", traceback)
    values = {
        "status": status,
        "result": fields.get("result"),
        "error": error,  # None: the record's own (a cancel's reason) stays
        "traceback": traceback,
        "progress_current": fields.get("progress_current", record.progress_current),
        "progress_total": fields.get("progress_total", record.progress_total),
        "progress_message": fields.get("progress_message", record.progress_message),
        "run_at": fields.get("run_at"),
        "finished_at": now if status in TaskStatus.final() else None,
        "history": [*record.history, entry],
    }
    if not sql.execute(
        sql.FINISH, database(), {**values, "id": record.pk, "attempts": record.attempts}
    ):
        return False
    for name, value in values.items():
        if value is not None or name in ("result", "finished_at", "progress_total"):
            setattr(record, name, value)
    return True


# Cancelling


def cancel(record: TaskRecord, *, terminate: bool = False, reason: str = "") -> str | None:
    """Cancel a waiting record at once, or a running one (``terminate``) or ask it to stop.

    Returns what happened: ``"canceled"`` (now final), ``"requested"`` (a
    running record will stop at its next progress call) or None (final
    already, nothing changed). The reason is kept as the record's ``error``.
    """
    now = timezone.now()
    error = f"Canceled: {reason}" if reason else "Canceled"
    if (
        _records()
        .fenced(record.pk, status__in=list(TaskStatus.waiting()))
        .update(status=TaskStatus.CANCELED, finished_at=now, error=error)
    ):
        record.status, record.finished_at, record.error = TaskStatus.CANCELED, now, error
        return "canceled"
    running = _records().fenced(record.pk, status=TaskStatus.RUNNING)
    if terminate:
        # Final first: whatever the killed run would still write is fenced out.
        # The attempt it ends goes to the history, so the row is read first.
        row = running.only("history", "attempts", "started_at", "worker").first()
        changed = row is not None and _running(record.pk, row.attempts).update(
            status=TaskStatus.CANCELED, cancel_requested=True, finished_at=now, error=error,
            history=[*row.history, attempt_entry(row, TaskStatus.CANCELED, now, error=error)],
        )  # fmt: skip
        outcome = "canceled" if changed else None
    else:
        changed = running.update(cancel_requested=True, error=error)
        outcome = "requested" if changed else None
    record.refresh_from_db(fields=["status", "cancel_requested", "finished_at", "error"])
    return outcome


# The dispatcher's sweeps: bounded moves of many rows


def _take(pending: TaskRecordQuerySet, order: str, **changes: Any) -> list[TaskRecord]:
    """Move at most ``BATCH`` rows with ``changes``; return only the rows this process moved.

    With ``SKIP LOCKED`` two dispatchers take disjoint batches; elsewhere each
    row moves by its own conditional UPDATE, which only one of them can win.
    """
    using = database()
    pending = pending.using(using)
    batch = pending.order_by(order).only(*_PUBLISHED_FIELDS)
    if transaction.get_connection(using).features.has_select_for_update_skip_locked:
        with transaction.atomic(using=using):
            rows = list(batch.select_for_update(skip_locked=True)[:BATCH])
            TaskRecord.objects.using(using).filter(pk__in=[row.pk for row in rows]).update(
                **changes
            )
    else:
        rows = [row for row in batch[:BATCH] if pending.filter(pk=row.pk).update(**changes)]
    for row in rows:
        for name, value in changes.items():
            setattr(row, name, value)
    return rows


def take_due(horizon: datetime.datetime) -> list[TaskRecord]:
    """SCHEDULED records due before ``horizon`` → READY; return them, to be published."""
    pending = TaskRecord.objects.filter(status=TaskStatus.SCHEDULED, run_at__lte=horizon)
    return _take(pending, "run_at", status=TaskStatus.READY, queued_at=timezone.now())


def take_unclaimed(pending: TaskRecordQuerySet) -> list[TaskRecord]:
    """READY records among ``pending`` marked published now; return them, to be published."""
    return _take(pending.filter(status=TaskStatus.READY), "created_at", queued_at=timezone.now())


def take_lost(cutoff: datetime.datetime, error: str) -> dict[str, list[TaskRecord]]:
    """RUNNING records whose heartbeat is older than ``cutoff``: their worker is gone.

    A run asked to stop becomes CANCELED; one with attempts left is SCHEDULED
    now (a retry); the others FAILED. Each lost attempt goes to its history,
    by one conditional UPDATE per record (lost runs are few).
    """
    now = timezone.now()
    quiet = Q(status=TaskStatus.RUNNING, heartbeat_at__lt=cutoff)
    moved: dict[str, list[TaskRecord]] = {"canceled": [], "retried": [], "failed": []}
    stale = TaskRecord.objects.using(database()).filter(quiet).order_by("heartbeat_at")
    for row in stale.only(*_PUBLISHED_FIELDS)[:BATCH]:
        changes: dict[str, Any]
        if row.cancel_requested:
            outcome, changes = "canceled", {"status": TaskStatus.CANCELED, "finished_at": now}
        elif row.attempts < row.max_attempts:
            outcome, changes = "retried", {"status": TaskStatus.SCHEDULED, "run_at": now}
        else:
            outcome, changes = "failed", {"status": TaskStatus.FAILED, "finished_at": now}
        if outcome != "canceled":
            changes["error"] = error
        ended = TaskStatus.CANCELED if outcome == "canceled" else TaskStatus.FAILED
        entry = attempt_entry(row, ended, now, WorkerLost(error), error)
        changes["history"] = [*row.history, entry]
        still_lost = _records().fenced(row.pk, quiet, attempts=row.attempts)
        if still_lost.update(**changes):
            for name, value in changes.items():
                setattr(row, name, value)
            moved[outcome].append(row)
    return moved
