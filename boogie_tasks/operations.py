"""Operations on many records at once, shared by the admin and the management command."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, router, transaction
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from boogie_tasks import registry, transitions
from boogie_tasks.exceptions import InvalidState
from boogie_tasks.models import TaskRecord
from boogie_tasks.publishing import publish_on_commit
from boogie_tasks.querysets import TaskRecordQuerySet
from boogie_tasks.status import TaskStatus

__all__ = ["TaskStats", "clean", "percentile", "retry", "select", "stats"]

logger = logging.getLogger("boogie_tasks")

# Fields a retry copies from the record it repeats: the same call, routed alike.
_COPIED = (
    "task_name", "content_type_id", "object_id", "args", "kwargs", "args_hash", "unique_key",
    "owner_id", "queue", "priority", "options", "max_attempts",
)  # fmt: skip


def select(
    records: TaskRecordQuerySet | None = None,
    *,
    task: str | None = None,
    statuses: Iterable[str] | None = None,
    obj: models.Model | tuple[ContentType, str] | None = None,
    older_than: datetime.timedelta | None = None,
) -> TaskRecordQuerySet:
    """Filter records by task name, statuses, object and age (created before now - age).

    ``obj`` is a model instance or a ``(content_type, object_id)`` pair, so the
    records of a deleted object can be found too.
    """
    records = TaskRecord.objects.all() if records is None else records
    if task:
        records = records.for_task(task)
    if statuses:
        records = records.with_status(*statuses)
    if isinstance(obj, tuple):
        records = records.filter(content_type=obj[0], object_id=str(obj[1]))
    elif obj is not None:
        records = records.for_object(obj)
    if older_than is not None:
        records = records.filter(created_at__lt=timezone.now() - older_than)
    return records


def retry(record: TaskRecord) -> TaskRecord:
    """Make a new READY record of the same call as a finished one; publish it after commit.

    Raises:
        UnknownTask: the record's task is not registered in this process.
        InvalidState: the record is not finished, or an unfinished record of the
            same unique task exists.
    """
    registry.get(record.task_name)  # an unknown task could never run: refuse now
    if not record.is_finished:
        raise InvalidState(
            f"{record.task_name} record {record.pk} is {record.status}; only a finished "
            "(SUCCESSFUL, FAILED or CANCELED) record can be retried"
        )
    fields = {name: getattr(record, name) for name in _COPIED}
    try:
        # A savepoint: a unique task's constraint may refuse the INSERT.
        with transaction.atomic(using=router.db_for_write(TaskRecord)):
            new = transitions.create(
                TaskRecord(status=TaskStatus.READY, queued_at=timezone.now(), **fields)
            )
    except IntegrityError:
        records = TaskRecord.objects.using(router.db_for_write(TaskRecord))
        active = records.unfinished().filter(unique_key=record.unique_key).first()
        raise InvalidState(
            f"{record.task_name} is unique and record {active.pk if active else '?'} of the "
            f"same call is still unfinished; record {record.pk} was not retried"
        ) from None
    logger.info("retried task=%s record=%s new=%s", record.task_name, record.pk, new.pk)
    publish_on_commit(new)
    return new


def clean(
    records: TaskRecordQuerySet | None = None,
    *,
    older_than: datetime.timedelta | None = None,
    keep_last: bool = False,
    finished: bool = True,
    batch_size: int = 1000,
    dry_run: bool = False,
) -> dict[str, int]:
    """Delete records in batches by primary key; return how many went, per task name.

    Args:
        records: the records to consider (all by default), e.g. from ``select()``.
        older_than: delete only records created longer ago than this.
        keep_last: keep the newest considered record of each object, per task,
            however old it is.
        finished: delete only records in a final state, never a queued or running one.
        batch_size: rows read and deleted per query; memory stays bounded by it.
        dry_run: count what would go, delete nothing.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    considered = TaskRecord.objects.all() if records is None else records
    if finished:
        considered = considered.finished()
    doomed = considered
    if older_than is not None:
        doomed = doomed.filter(created_at__lt=timezone.now() - older_than)
    if keep_last:
        newest = considered.filter(
            task_name=OuterRef("task_name"),
            content_type=OuterRef("content_type"),
            object_id=OuterRef("object_id"),
        ).order_by("-created_at", "-id")
        doomed = doomed.exclude(pk=Subquery(newest.values("pk")[:1]))
    removed: Counter[str] = Counter()
    last = None
    while True:
        # Keyset pagination: each batch starts after the last key, so no OFFSET scan
        # and no list of every row; ids are time-ordered UUIDs.
        page = doomed.order_by("pk") if last is None else doomed.filter(pk__gt=last).order_by("pk")
        batch = list(page.values_list("pk", "task_name")[:batch_size])
        if not batch:
            break
        last = batch[-1][0]
        by_task: dict[str, list[Any]] = {}
        for pk, name in batch:
            by_task.setdefault(name, []).append(pk)
        for name, pks in by_task.items():
            if dry_run:
                removed[name] += len(pks)
                continue
            gone = TaskRecord.objects.filter(pk__in=pks)
            if finished:  # a record cannot leave a final state, but say it anyway
                gone = gone.finished()
            count, _ = gone.delete()
            removed[name] += count
        if len(batch) < batch_size:
            break
    for name, count in sorted(removed.items()):
        logger.info("cleaned task=%s removed=%s dry_run=%s", name, count, dry_run)
    return dict(sorted(removed.items()))


@dataclasses.dataclass(frozen=True)
class TaskStats:
    """Counts per status and run-time percentiles (seconds) of one task."""

    task_name: str
    counts: dict[str, int]
    runs: int
    p50: float | None
    p90: float | None
    p99: float | None

    @property
    def total(self) -> int:
        """Records of the task in all states."""
        return sum(self.counts.values())


def stats(records: TaskRecordQuerySet | None = None, *, last: int = 1000) -> list[TaskStats]:
    """Count records per task and status; run-time percentiles of the last successful runs.

    Run time is ``finished_at - started_at`` of SUCCESSFUL records, at most the
    ``last`` most recently finished per task, computed in Python (nearest rank).
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, not {last!r}")
    records = TaskRecord.objects.all() if records is None else records
    counts: dict[str, dict[str, int]] = {}
    rows = records.order_by().values_list("task_name", "status").annotate(n=Count("pk"))
    for name, status, n in rows:
        counts.setdefault(name, {})[status] = n
    result = []
    for name in sorted(counts):
        spans = (
            records.for_task(name)
            .successful()
            .filter(started_at__isnull=False, finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("started_at", "finished_at")[:last]
        )
        durations = sorted(
            max(0.0, (end - start).total_seconds()) for start, end in spans if start and end
        )
        result.append(
            TaskStats(
                task_name=name,
                counts={s: counts[name][s] for s in TaskStatus.values if s in counts[name]},
                runs=len(durations),
                p50=percentile(durations, 50),
                p90=percentile(durations, 90),
                p99=percentile(durations, 99),
            )
        )
    return result


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
