"""The dispatcher's sweeps: due runs, unclaimed READY records, lost workers."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from boogie_tasks.conf import settings
from boogie_tasks.models import TaskRecord
from boogie_tasks.querysets import TaskRecordQuerySet
from boogie_tasks.scheduling import dispatch_every
from boogie_tasks.signals import send, task_finished
from boogie_tasks.status import TaskStatus

logger = logging.getLogger("boogie_tasks")

BATCH = 500
# One tick stops taking new batches after this long; the next tick goes on.
TICK_BUDGET = 10.0

_PUBLISHED_FIELDS = (
    "id", "task_name", "queue", "priority", "options", "attempts", "max_attempts", "run_at",
    "history",
)  # fmt: skip


def dispatch() -> dict[str, int]:
    """Run the three sweeps once; return how many records each one moved."""
    deadline = time.monotonic() + TICK_BUDGET
    counts = {
        "due": _sweep(_due, deadline),
        "republished": _sweep(_unclaimed, deadline),
        "lost": _sweep(_lost, deadline),
    }
    if any(counts.values()):
        logger.info("dispatch %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def _sweep(step: Any, deadline: float) -> int:
    total = 0
    while time.monotonic() < deadline:
        moved = step()
        total += moved
        if moved < BATCH:
            break
    return total


def _take(pending: TaskRecordQuerySet, order: str, **changes: Any) -> list[TaskRecord]:
    """Move a batch of rows with ``changes``; return only the rows this process moved.

    With ``SKIP LOCKED`` two dispatchers take disjoint batches; elsewhere each
    row moves by its own conditional UPDATE, which only one of them can win.
    """
    batch = pending.order_by(order).only(*_PUBLISHED_FIELDS)
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            rows = list(batch.select_for_update(skip_locked=True)[:BATCH])
            TaskRecord.objects.filter(pk__in=[row.pk for row in rows]).update(**changes)
        return rows
    return [row for row in batch[:BATCH] if pending.filter(pk=row.pk).update(**changes)]


def _publish_all(rows: list[TaskRecord], now: datetime.datetime) -> None:
    from boogie_tasks.publishing import publish_many

    # A run due before the next tick goes now, with its time as the ETA: the
    # worker starts it on time, and the claim refuses it before run_at.
    # Always "retry" here: the outbox must never fail or run a record on a tick.
    publish_many(
        rows, "retry", eta=lambda row: row.run_at if row.run_at and row.run_at > now else None
    )


def _due() -> int:
    """SCHEDULED records due before the next tick: READY, then published."""
    now = timezone.now()
    horizon = now + datetime.timedelta(seconds=dispatch_every())
    pending = TaskRecord.objects.filter(status=TaskStatus.SCHEDULED, run_at__lte=horizon)
    rows = _take(pending, "run_at", status=TaskStatus.READY, queued_at=now)
    _publish_all(rows, now)
    return len(rows)


def _unclaimed() -> int:
    """READY records never published, or not claimed for a while: published again.

    A record waiting behind others of its task that workers are starting is in
    a long queue, not lost: publishing it again would only double the backlog.
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=float(settings.REPUBLISH_AFTER))
    ready = TaskRecord.objects.ready()
    stale = ready.filter(queued_at__lt=cutoff)
    moving = [
        (task_name, queue)
        for task_name, queue in stale.values_list("task_name", "queue").distinct()
        if TaskRecord.objects.filter(
            task_name=task_name, queue=queue, started_at__gte=cutoff
        ).exists()
    ]
    for task_name, queue in moving:
        stale = stale.exclude(task_name=task_name, queue=queue)
    rows = _take(ready.filter(queued_at__isnull=True) | stale, "created_at", queued_at=now)
    _publish_all(rows, now)
    return len(rows)


def _lost() -> int:
    """RUNNING records whose heartbeat stopped: tried again if attempts remain, else FAILED."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=float(settings.STALE_AFTER))
    error = (
        "WorkerLost: the worker running this record stopped sending heartbeats "
        f"for over {settings.STALE_AFTER} s"
    )
    # A run asked to stop is not tried again when its worker goes away.
    quiet = Q(status=TaskStatus.RUNNING, heartbeat_at__lt=cutoff)
    canceled = _take(
        TaskRecord.objects.filter(quiet, cancel_requested=True), "heartbeat_at",
        status=TaskStatus.CANCELED, finished_at=now,
    )  # fmt: skip
    quiet &= Q(cancel_requested=False)
    stale = TaskRecord.objects.filter(quiet)
    retried = []
    for row in stale.filter(attempts__lt=F("max_attempts")).order_by("heartbeat_at")[:BATCH]:
        # One conditional UPDATE each (lost runs are few): the history entry goes with it.
        entry = {"attempt": row.attempts, "error": error, "at": now.isoformat()}
        still_lost = TaskRecord.objects.fenced(row.pk, quiet, attempts=row.attempts)
        if still_lost.update(
            status=TaskStatus.SCHEDULED, run_at=now, error=error, history=[*row.history, entry]
        ):
            retried.append(row)
    failed = _take(
        stale.filter(attempts__gte=F("max_attempts")), "heartbeat_at",
        status=TaskStatus.FAILED, finished_at=now, error=error,
    )  # fmt: skip
    for row in canceled:
        logger.info("lost run canceled task=%s record=%s", row.task_name, row.pk)
        row.status = TaskStatus.CANCELED
        send(task_finished, record=row, status=row.status)
    for row in failed:
        row.status, row.error = TaskStatus.FAILED, error
        send(task_finished, record=row, status=row.status)
    for row in [*retried, *failed]:
        logger.error(
            "worker lost task=%s record=%s attempt=%s of %s",
            row.task_name, row.pk, row.attempts, row.max_attempts,
        )  # fmt: skip
    return len(canceled) + len(retried) + len(failed)
