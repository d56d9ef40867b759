"""``TaskRecord``: one row for every run of a task, tied to its model instance."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from boogie_tasks.ids import uuid7
from boogie_tasks.querysets import TaskRecordManager
from boogie_tasks.status import TaskStatus

__all__ = ["TaskRecord", "TaskStatus"]

# Fields a wait() poll re-reads: everything a finished run writes.
_REFRESHED = (
    "status", "result", "error", "traceback", "progress_current", "progress_total",
    "progress_message", "started_at", "finished_at", "heartbeat_at", "attempts",
    "worker", "cancel_requested", "run_at", "queued_at",
)  # fmt: skip


class TaskRecord(models.Model):
    """A run of a task: what ran, for which object, how it went."""

    id = models.UUIDField(
        primary_key=True, default=uuid7, editable=False, verbose_name=_("id"),
        help_text=_("Time-ordered UUID (version 7): id order is creation order."),
    )  # fmt: skip
    task_name = models.CharField(
        _("task"), max_length=255, help_text=_("Dotted path of the task function.")
    )
    status = models.CharField(
        _("status"), max_length=10, choices=TaskStatus.choices, default=TaskStatus.READY,
        help_text=_("Where the run is in its life; a final state is never overwritten."),
    )  # fmt: skip
    content_type = models.ForeignKey(
        # No index of its own: boogie_task_object_idx starts with this column.
        ContentType, on_delete=models.CASCADE, related_name="+", db_index=False,
        verbose_name=_("content type"), help_text=_("Model of the object the task ran for."),
    )  # fmt: skip
    object_id = models.CharField(
        _("object id"), max_length=255,
        help_text=_("Primary key of the object, as text (any primary-key type)."),
    )  # fmt: skip
    obj = GenericForeignKey("content_type", "object_id")
    args = models.JSONField(
        _("arguments"), default=list, blank=True,
        help_text=_("Positional arguments after the object, as JSON."),
    )  # fmt: skip
    kwargs = models.JSONField(
        _("keyword arguments"), default=dict, blank=True,
        help_text=_("Keyword arguments, as JSON."),
    )  # fmt: skip
    result = models.JSONField(
        _("result"), null=True, blank=True, help_text=_("What the task returned, as JSON.")
    )
    error = models.TextField(
        _("error"), blank=True,
        help_text=_(
            "The exception's type and message, the bare message of TaskFailed, "
            "or why the run was canceled."
        ),
    )  # fmt: skip
    traceback = models.TextField(
        _("traceback"), blank=True, help_text=_("Traceback of an unexpected exception.")
    )
    progress_current = models.BigIntegerField(
        _("progress"), default=0, help_text=_("Units of work done so far.")
    )
    progress_total = models.BigIntegerField(
        _("progress total"), null=True, blank=True,
        help_text=_("Units of work in all, when known."),
    )  # fmt: skip
    progress_message = models.CharField(
        _("progress message"), max_length=255, blank=True,
        help_text=_("What the task says it is doing."),
    )  # fmt: skip
    created_at = models.DateTimeField(
        _("created"), default=timezone.now, editable=False,
        help_text=_("When the record was made."),
    )  # fmt: skip
    run_at = models.DateTimeField(
        _("run at"), null=True, blank=True,
        help_text=_("Earliest time the run may start; empty means at once."),
    )  # fmt: skip
    queued_at = models.DateTimeField(
        _("queued"), null=True, blank=True,
        help_text=_("When it was last made READY or published again (the outbox sweep's clock)."),
    )  # fmt: skip
    started_at = models.DateTimeField(
        _("started"), null=True, blank=True, help_text=_("When the last attempt started.")
    )
    finished_at = models.DateTimeField(
        _("finished"), null=True, blank=True, help_text=_("When a final state was reached.")
    )
    heartbeat_at = models.DateTimeField(
        _("heartbeat"), null=True, blank=True,
        help_text=_("Last sign of life of a running attempt (a progress write counts)."),
    )  # fmt: skip
    attempts = models.PositiveIntegerField(
        _("attempts"), default=0, help_text=_("How many times a run was started.")
    )
    max_attempts = models.PositiveIntegerField(
        _("max attempts"), default=1,
        help_text=_("Attempts allowed in all (retries + 1); the claim refuses more."),
    )  # fmt: skip
    history = models.JSONField(
        _("history"), default=list, blank=True,
        help_text=_(
            "Each finished attempt: its number, status, start and end, worker and, "
            "for a failure, the exception's class, message and traceback."
        ),
    )  # fmt: skip
    worker = models.CharField(
        _("worker"), max_length=255, blank=True,
        help_text=_("Host and process id of the last attempt."),
    )  # fmt: skip
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name=_("owner"), db_index=False,  # see Meta.indexes
        help_text=_("User who started the run; may see and cancel it."),
    )  # fmt: skip
    queue = models.CharField(
        _("queue"), max_length=255, blank=True,
        help_text=_("Celery queue it was sent to; empty means Celery's own routing."),
    )  # fmt: skip
    priority = models.IntegerField(
        _("priority"), null=True, blank=True, help_text=_("Celery message priority.")
    )
    options = models.JSONField(
        _("options"), default=dict, blank=True,
        help_text=_("Other options the run was made with, to publish it again alike."),
    )  # fmt: skip
    cancel_requested = models.BooleanField(
        _("cancel requested"), default=False,
        help_text=_("Set on a running record; its next progress call stops it."),
    )  # fmt: skip
    args_hash = models.CharField(
        _("arguments hash"), max_length=64, blank=True,
        help_text=_("SHA-256 of the arguments as canonical JSON, to find the same call."),
    )  # fmt: skip
    unique_key = models.CharField(
        _("unique key"), max_length=64, null=True, blank=True, editable=False,
        help_text=_("Set for unique tasks: one unfinished record per key."),
    )  # fmt: skip

    objects = TaskRecordManager()

    class Meta:
        verbose_name = _("task record")
        verbose_name_plural = _("task records")
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "task_name", "-created_at"],
                name="boogie_task_object_idx",
            ),
            models.Index(fields=["task_name", "-created_at"], name="boogie_task_name_idx"),
            models.Index(fields=["task_name", "started_at"], name="boogie_task_started_idx"),
            models.Index(fields=["status", "run_at"], name="boogie_task_status_idx"),
            # Partial indexes hold only the records they are for: a run's three
            # writes (INSERT, claim, finish) each add an entry to every index a
            # row belongs to, and most records are finished and ownerless.
            # Where partial indexes are unknown (MySQL) they are whole indexes
            # led by status, as useful as before.
            models.Index(
                fields=["status", "queued_at"],
                name="boogie_task_queued_idx",
                condition=models.Q(status="READY"),
            ),  # fmt: skip
            models.Index(
                fields=["status", "heartbeat_at"],
                name="boogie_task_heartbeat_idx",
                condition=models.Q(status="RUNNING"),
            ),  # fmt: skip
            models.Index(
                fields=["owner"],
                name="boogie_task_owner_idx",
                condition=models.Q(owner__isnull=False),
            ),  # fmt: skip
        ]
        constraints = [
            # unique=True: at most one unfinished record per key, enforced by the database.
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=models.Q(
                    status__in=["PAUSED", "SCHEDULED", "READY", "RUNNING"], unique_key__isnull=False
                ),
                name="boogie_task_unique_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} [{self.status}] {self.id}"

    # Reading

    @property
    def is_finished(self) -> bool:
        """Whether the record is in a final state."""
        return self.status in TaskStatus.final()

    @property
    def progress_percent(self) -> float | None:
        """Progress from 0 to 100, or None without a total."""
        if self.status == TaskStatus.SUCCESSFUL:
            return 100.0
        if not self.progress_total or self.progress_total <= 0:
            return None
        return max(0.0, min(100.0, 100.0 * self.progress_current / self.progress_total))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left, from the rate observed since the start; None if unknown."""
        if self.is_finished:
            return 0.0 if self.status == TaskStatus.SUCCESSFUL else None
        if (
            self.status != TaskStatus.RUNNING
            or not self.progress_total
            or self.progress_current <= 0
            or not self.started_at
            or not self.heartbeat_at
        ):
            return None
        elapsed = (self.heartbeat_at - self.started_at).total_seconds()
        if elapsed <= 0:
            return None
        left = max(0, self.progress_total - self.progress_current)
        since = (timezone.now() - self.heartbeat_at).total_seconds()
        return max(0.0, left * elapsed / self.progress_current - since)

    def _why_waiting(self) -> str:
        """What a record that is overdue waits for, for an error message."""
        now = timezone.now()
        if self.status == TaskStatus.SCHEDULED and self.run_at and self.run_at < now:
            late = (now - self.run_at).total_seconds()
            return (
                f"; it was due {late:.0f} s ago: scheduled runs are started by the "
                "dispatcher, so celery beat (or worker -B) must be running"
            )
        if self.status == TaskStatus.READY and self.queued_at and self.queued_at < now:
            queue = self.queue or "Celery's default queue"
            return f"; is a worker running and consuming {queue}?"
        return ""

    # Acting

    def run(self) -> Any:
        """Run a paused (or queued) record here and now; return its JSON result.

        Raises the task's exception after recording it, as ``fn.call()`` does.
        """
        from boogie_tasks import runner

        return runner.run_here(self)

    def enqueue(self) -> TaskRecord:
        """Send a paused record to a worker once the current transaction commits."""
        from boogie_tasks import publishing

        return publishing.enqueue(self)

    def cancel(self, terminate: bool = False, reason: str = "") -> bool:
        """Cancel the record: at once if it has not started, cooperatively if running.

        ``terminate=True`` ends a running record at once and has Celery kill the
        worker process running it. ``reason`` is kept in ``error`` ("Canceled:
        <reason>"). Returns whether the record is (or will be) cancelled; a
        final record is left as it is and gives False.
        """
        from boogie_tasks import runner

        return runner.cancel(self, terminate=terminate, reason=reason)

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> TaskRecord:
        """Block until the record is final, then return it refreshed.

        Raises:
            TimeoutError: after ``timeout`` seconds, or at once inside the
                ``atomic()`` block that created it, where it could never finish.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh_from_db(fields=_REFRESHED)
            if self.is_finished:
                return self
            if (
                getattr(self, "_uncommitted", False)
                and transaction.get_connection(router.db_for_write(TaskRecord)).in_atomic_block
            ):
                raise TimeoutError(
                    f"{self.task_name} record {self.id} was created in the current "
                    "transaction; it cannot run before that transaction commits"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.task_name} record {self.id} is still {self.status} after "
                    f"{timeout} s{self._why_waiting()}"
                )
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(pause, 0))
            interval = min(interval * 1.5, 0.5)
