"""The dispatcher's sweeps: due runs, unclaimed READY records, lost workers."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable

from django.db.models import Count, Max, Q
from django.utils import timezone

from boogie_tasks import transitions
from boogie_tasks.conf import settings
from boogie_tasks.models import TaskRecord
from boogie_tasks.publishing import publish_many
from boogie_tasks.scheduling import dispatch_every
from boogie_tasks.signals import send, task_finished
from boogie_tasks.status import TaskStatus

__all__ = ["dispatch"]

logger = logging.getLogger("boogie_tasks")

# One tick stops taking new batches after this long; the next tick goes on.
TICK_BUDGET = 10.0


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


def _sweep(step: Callable[[], int], deadline: float) -> int:
    total = 0
    while time.monotonic() < deadline:
        moved = step()
        total += moved
        if moved < transitions.BATCH:
            break
    return total


def _publish_all(rows: list[TaskRecord], now: datetime.datetime) -> None:
    # A run due before the next tick goes now, with its time as the ETA: the
    # worker starts it on time, and the claim refuses it before run_at.
    # Always "retry" here: the outbox must never fail or run a record on a tick.
    publish_many(
        rows, "retry", eta=lambda row: row.run_at if row.run_at and row.run_at > now else None
    )


def _due() -> int:
    """SCHEDULED records due before the next tick: READY, then published."""
    now = timezone.now()
    rows = transitions.take_due(now + datetime.timedelta(seconds=dispatch_every()))
    _publish_all(rows, now)
    return len(rows)


def _unclaimed() -> int:
    """READY records never published, or not claimed for a while: published again.

    A stale record whose task (and queue) workers are starting runs of is in
    a long queue, not lost, unless a record queued after it has started
    already: queues are first in, first out, so its own message is gone (a
    worker that took it and failed, a broker that dropped it). Only those are
    published again, so a busy queue neither doubles nor stalls them.
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=float(settings.REPUBLISH_AFTER))
    ready = TaskRecord.objects.ready()
    stale = ready.filter(queued_at__lt=cutoff)
    # order_by(): without the model's ordering, DISTINCT is over these two columns only.
    for task_name, queue in stale.order_by().values_list("task_name", "queue").distinct():
        started = TaskRecord.objects.filter(
            task_name=task_name, queue=queue, started_at__gte=cutoff
        ).aggregate(runs=Count("pk"), newest=Max("queued_at"))
        if started["runs"]:
            group = Q(task_name=task_name, queue=queue)
            if started["newest"] is not None:
                group &= Q(queued_at__gte=started["newest"])  # not overtaken: still in line
            stale = stale.exclude(group)
    rows = transitions.take_unclaimed(ready.filter(queued_at__isnull=True) | stale)
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
    moved = transitions.take_lost(cutoff, error)
    for row in moved["canceled"]:
        logger.info("lost run canceled task=%s record=%s", row.task_name, row.pk)
        send(task_finished, record=row, status=TaskStatus.CANCELED)
    for row in moved["failed"]:
        send(task_finished, record=row, status=TaskStatus.FAILED)
    for row in [*moved["retried"], *moved["failed"]]:
        logger.error(
            "worker lost task=%s record=%s attempt=%s of %s",
            row.task_name, row.pk, row.attempts, row.max_attempts,
        )  # fmt: skip
    return sum(len(rows) for rows in moved.values())
