"""Publishing a record's message to the broker: the broker is only a doorbell."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from boogie_tasks.conf import settings
from boogie_tasks.exceptions import InvalidState
from boogie_tasks.models import TaskRecord
from boogie_tasks.signals import send, task_enqueued, task_finished
from boogie_tasks.status import TaskStatus

logger = logging.getLogger("boogie_tasks")


def message_options(record: TaskRecord, eta: Any = None) -> dict[str, Any]:
    """Celery options of the record's message: its routing, as it was first sent."""
    options: dict[str, Any] = {
        "task_id": str(record.pk),
        # Logs and monitors show the real task; task_routes for it apply.
        "shadow": record.task_name,
        "route_name": record.task_name,
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
    from boogie_tasks.runner import run, run_here

    try:
        run.apply_async(args=[str(record.pk)], **message_options(record, eta))
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
            try:
                run_here(record)
            except Exception:
                pass  # recorded on the record by run_here, and logged there
        elif policy == "fail":
            if TaskRecord.objects.fenced(record.pk, status=TaskStatus.READY).update(
                status=TaskStatus.FAILED, error=error, finished_at=timezone.now()
            ):
                record.status, record.error = TaskStatus.FAILED, error
                send(task_finished, record=record, status=record.status)
        else:
            # Written down so the admin says why it waits (the claim clears it), and
            # marked never published, so the dispatcher's next tick publishes it again.
            TaskRecord.objects.fenced(record.pk, status=TaskStatus.READY).update(
                error=error, queued_at=None
            )
        return False


def enqueue(record: TaskRecord) -> TaskRecord:
    """Move a paused (or scheduled) record to READY, due now, and publish it after commit."""
    moved = TaskRecord.objects.fenced(
        record.pk, status__in=[TaskStatus.PAUSED, TaskStatus.SCHEDULED]
    ).update(status=TaskStatus.READY, run_at=None, queued_at=timezone.now())
    if not moved:
        record.refresh_from_db(fields=["status"])
        raise InvalidState(
            f"{record.task_name} record {record.pk} is {record.status}; only a "
            "PAUSED or SCHEDULED record can be enqueued"
        )
    record.status, record.run_at = TaskStatus.READY, None
    publish_on_commit(record)
    return record


def publish_on_commit(record: TaskRecord) -> None:
    """Publish the record's message once the current transaction commits.

    A broker failure follows the record's own policy (``options["on_broker_error"]``).
    """
    if connection.in_atomic_block:
        record._uncommitted = True  # type: ignore[attr-defined]

    def committed() -> None:
        record._uncommitted = False  # type: ignore[attr-defined]
        publish(record)

    transaction.on_commit(committed, robust=True)
