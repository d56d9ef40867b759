"""Publishing a record's message to the broker: the broker is only a doorbell."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.db import router, transaction
from django.utils import timezone

from boogie_tasks import recording, transitions
from boogie_tasks.conf import settings
from boogie_tasks.exceptions import InvalidState
from boogie_tasks.models import TaskRecord
from boogie_tasks.signals import send, task_enqueued, task_finished
from boogie_tasks.status import TaskStatus

if TYPE_CHECKING:
    from celery import Task as CeleryTask

    from boogie_tasks.task import Task

logger = logging.getLogger("boogie_tasks")

__all__ = ["enqueue", "message_options", "publish", "publish_many", "publish_on_commit", "queue"]

# Messages sent in one round trip by ``publish_many`` (kombu 5.7+ on Redis).
BATCH_SIZE = 500
RUN_TASK = "boogie_tasks.run"


def _run_task() -> CeleryTask:
    """``boogie_tasks.run`` in the current Celery app (defined by ``runner``), found by name."""
    return current_app.tasks[RUN_TASK]


def message_options(record: TaskRecord, eta: Any = None) -> dict[str, Any]:
    """Celery options of the record's message: its routing, as it was first sent."""
    task_id = str(record.pk)
    options: dict[str, Any] = {
        "task_id": task_id,
        # Logs and monitors show the real task; task_routes for it apply.
        "shadow": record.task_name,
        "route_name": record.task_name,
        # What Celery would write (its saferepr of the arguments), without its cost.
        "argsrepr": repr([task_id]),
        "kwargsrepr": "{}",
        "retry": True,
        "retry_policy": {
            "max_retries": int(settings.PUBLISH_MAX_RETRIES),
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
    }
    if record.queue:
        options["queue"] = record.queue
    if record.priority is not None:
        options["priority"] = record.priority
    if eta is not None:
        options["eta"] = eta
    options.update(record.options.get("celery", {}))
    return options


def publish(record: TaskRecord, on_broker_error: str | None = None, eta: Any = None) -> bool:
    """Send ``boogie_tasks.run(record.id)``; on a broker failure apply the policy.

    ``on_broker_error``: "retry" leaves the record READY for the dispatcher to
    publish again, "run" runs it in this process, "fail" marks it FAILED.
    Returns whether the message left.
    """
    run = _run_task()
    try:
        run.apply_async(args=(str(record.pk),), **message_options(record, eta))
        send(task_enqueued, record=record)
        return True
    except Exception as exc:
        policy = (
            on_broker_error or record.options.get("on_broker_error") or settings.ON_BROKER_ERROR
        )
        logger.exception(
            "publish failed task=%s record=%s policy=%s", record.task_name, record.pk, policy
        )
        error = f"BrokerUnavailable: {type(exc).__name__}: {exc}"
        if policy == "run":
            # The worker's own task, run in this process: failures are recorded, not raised.
            run.apply(args=(str(record.pk),))
            record.refresh_from_db()
        elif policy == "fail":
            if transitions.publish_failed(record, error, fail=True):
                send(task_finished, record=record, status=record.status)
        else:
            # Written down so the admin says why it waits (the claim clears it), and
            # marked never published, so the dispatcher's next tick publishes it again.
            transitions.publish_failed(record, error, fail=False)
        return False


def publish_many(
    records: Sequence[TaskRecord],
    on_broker_error: str | None = None,
    eta: Callable[[TaskRecord], Any] | None = None,
) -> int:
    """Publish several records' messages with one producer; return how many left.

    Where the transport can, each ``BATCH_SIZE`` messages go in one round trip
    (kombu 5.7's ``Producer.batch()``: one Redis pipeline); elsewhere they are
    sent one by one on that producer. In a batch, only the first message of
    each task name and ``queue`` declares its queue, as Celery declares it
    for every message: the router sends the next ones of that name and queue
    where it sent the first, on the same producer. When a batch fails, its
    records are published again one by one by ``publish()``, with its
    retries and the broker-error policy: a message that did leave is then
    sent twice, and its second run is dropped by the claim.
    """
    run = _run_task()

    def eta_of(record: TaskRecord) -> Any:
        return eta(record) if eta else None

    def one_by_one(records: Sequence[TaskRecord]) -> int:
        return sum(publish(record, on_broker_error, eta_of(record)) for record in records)

    if len(records) == 1 or run.app.conf.task_always_eager:
        return one_by_one(records)
    sent = 0
    for start in range(0, len(records), BATCH_SIZE):
        chunk = records[start : start + BATCH_SIZE]
        try:
            with run.app.producer_or_acquire() as producer:
                with _batch(producer):
                    routed: set[tuple[str, str]] = set()
                    for record in chunk:
                        options = message_options(record, eta_of(record))
                        route = (record.task_name, record.queue)
                        if route in routed and "eta" not in options:
                            options["declare"] = []
                        routed.add(route)
                        run.apply_async(args=(str(record.pk),), producer=producer, **options)
        except Exception:
            logger.warning(
                "batch publish failed records=%s: publishing them one by one",
                len(chunk), exc_info=True,
            )  # fmt: skip
            sent += one_by_one(chunk)
            continue
        for record in chunk:
            send(task_enqueued, record=record)
        sent += len(chunk)
    return sent


def _batch(producer: Any) -> Any:
    batch = getattr(producer, "batch", None)  # kombu 5.7+
    return batch(max_size=BATCH_SIZE) if batch is not None else nullcontext()


def enqueue(record: TaskRecord) -> TaskRecord:
    """Move a paused (or scheduled) record to READY, due now, and publish it after commit."""
    if not transitions.enqueue(record):
        record.refresh_from_db(fields=["status"])
        raise InvalidState(
            f"{record.task_name} record {record.pk} is {record.status}; only a "
            "PAUSED or SCHEDULED record can be enqueued"
        )
    publish_on_commit(record)
    return record


def queue(task: Task[Any, Any], fields: dict[str, Any]) -> TaskRecord:
    """INSERT the record READY and publish it after commit (unless unique found one)."""
    record, created = recording.insert(task, fields, TaskStatus.READY, queued_at=timezone.now())
    if created:
        publish_on_commit(record)
    return record


def publish_on_commit(record: TaskRecord) -> None:
    """Publish the record's message once the current transaction commits.

    A broker failure follows the record's own policy (``options["on_broker_error"]``).
    Records queued one after another in one transaction (and savepoint) share
    one ``on_commit`` callback, which publishes them together: the order of
    the callbacks, and what a savepoint's rollback discards, stay as with one
    callback each.
    """
    using = router.db_for_write(TaskRecord)
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        publish(record)
        return
    record._uncommitted = True  # type: ignore[attr-defined]
    batch = _open_batch(connection)
    if batch is None:
        batch = _OnCommitBatch()
        transaction.on_commit(batch, using=using, robust=True)
    batch.records.append(record)


class _OnCommitBatch:
    """The records of one ``on_commit`` callback, published when it runs."""

    def __init__(self) -> None:
        self.records: list[TaskRecord] = []

    def __call__(self) -> None:
        for record in self.records:
            record._uncommitted = False  # type: ignore[attr-defined]
        publish_many(self.records)


def _open_batch(connection: Any) -> _OnCommitBatch | None:
    """Our callback if it is the last one registered, in the current savepoint.

    Reads Django's list of callbacks, ``(savepoint ids, callback, robust)``
    since Django 4.2; should that change, each record gets its own callback.
    """
    try:
        savepoints, callback, _robust = connection.run_on_commit[-1]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    if isinstance(callback, _OnCommitBatch) and savepoints == set(connection.savepoint_ids):
        return callback
    return None
