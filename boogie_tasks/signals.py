"""Signals sent along a run's life, for a project's hooks (metrics, notifications).

Each is sent with ``sender=TaskRecord`` and robustly: a receiver that raises is
logged under the ``boogie_tasks`` logger and never breaks a run.

- ``task_enqueued(record)``: a record was made READY (``.delayed()``, ``enqueue()``,
  a recurring firing); sent when its message is handed to the broker.
- ``task_started(record)``: a run claimed the record and is about to call the function.
- ``task_progress(record_id, current, total, message)``: a progress write reached the
  database (throttled like the writes themselves).
- ``task_finished(record, status)``: the record reached a final state.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.dispatch import Signal

logger = logging.getLogger("boogie_tasks")

task_enqueued = Signal()
task_started = Signal()
task_progress = Signal()
task_finished = Signal()


def send(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` robustly: log what a receiver raises, never raise it."""
    if not signal.receivers:
        return
    record_model = apps.get_model("boogie_tasks", "TaskRecord")
    for receiver, result in signal.send_robust(sender=record_model, **kwargs):
        if isinstance(result, Exception):
            logger.error("signal receiver %r raised %r", receiver, result, exc_info=result)
