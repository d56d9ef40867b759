"""Helpers for a project's own tests: run what is queued, when the test chooses."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import run_here
from boogie_tasks.status import TaskStatus

__all__ = ["run_pending"]


def run_pending(task: Any = None, *, raise_errors: bool = False) -> list[TaskRecord]:
    """Run every READY (and due SCHEDULED) record here, oldest first; return them.

    In a ``TestCase`` nothing is published (its transaction never commits), so
    ``.delayed()`` records wait here until a test calls this. Records queued by
    the runs themselves, and retries that are due, are run too, until none is left.

    Args:
        task: only records of this task (a ``Task`` or its dotted name).
        raise_errors: raise the first task's exception after recording it (as
            ``record.run()`` does, so without a retry) instead of only recording it.
    """
    name = getattr(task, "name", task)
    done: list[TaskRecord] = []
    while True:
        due = Q(status=TaskStatus.SCHEDULED, run_at__lte=timezone.now())
        pending = TaskRecord.objects.filter(Q(status=TaskStatus.READY) | due)
        pending = pending.order_by("created_at", "id")
        if name:
            pending = pending.for_task(name)
        batch = list(pending)
        if not batch:
            return done
        for record in batch:
            # As a worker would: failures are recorded (and retried), not raised.
            run_here(record, reraise=raise_errors)
            done.append(record)
