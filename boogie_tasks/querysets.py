"""The QuerySet of ``TaskRecord``: methods named after statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import BooleanField, Case, Q, Value, When

from boogie_tasks.status import TaskStatus

if TYPE_CHECKING:
    from boogie_tasks.models import TaskRecord  # noqa: F401

    _Base = models.QuerySet["TaskRecord"]
else:
    _Base = models.QuerySet


class TaskRecordQuerySet(_Base):
    """Filters for the common questions about runs."""

    def for_task(self, name: str) -> TaskRecordQuerySet:
        """Records of the task with this dotted name."""
        return self.filter(task_name=name)

    def for_object(self, obj: models.Model) -> TaskRecordQuerySet:
        """Records made for this model instance."""
        content_type = ContentType.objects.get_for_model(obj)
        return self.filter(content_type=content_type, object_id=str(obj.pk))

    def with_status(self, *statuses: Any) -> TaskRecordQuerySet:
        """Records in any of these states."""
        return self.filter(status__in=list(statuses))

    def paused(self) -> TaskRecordQuerySet:
        """Records waiting for ``run()`` or ``enqueue()``."""
        return self.filter(status=TaskStatus.PAUSED)

    def ready(self) -> TaskRecordQuerySet:
        """Records queued for a worker."""
        return self.filter(status=TaskStatus.READY)

    def running(self) -> TaskRecordQuerySet:
        """Records a worker is running."""
        return self.filter(status=TaskStatus.RUNNING)

    def successful(self) -> TaskRecordQuerySet:
        """Records that ended well."""
        return self.filter(status=TaskStatus.SUCCESSFUL)

    def failed(self) -> TaskRecordQuerySet:
        """Records that ended with an error."""
        return self.filter(status=TaskStatus.FAILED)

    def finished(self) -> TaskRecordQuerySet:
        """Records in a final state: successful, failed or cancelled."""
        return self.filter(status__in=list(TaskStatus.final()))

    def unfinished(self) -> TaskRecordQuerySet:
        """Records not yet in a final state."""
        return self.exclude(status__in=list(TaskStatus.final()))

    def fenced(self, pk: Any, *args: Q, **conditions: Any) -> TaskRecordQuerySet:
        """The record ``pk``, only while the conditions hold: the filter of a fenced write.

        The record is found by its primary key alone. The conditions are wrapped
        in ``CASE``, which no index matches: on a bare ``status = 'RUNNING'``,
        PostgreSQL may pick an index on status when its statistics say few records
        run, and then read every running record to find this one.
        """
        held = Case(
            When(Q(*args, **conditions), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
        return self.filter(held, pk=pk)

    def newest_first(self) -> TaskRecordQuerySet:
        """Order by creation, newest first (the id breaks ties: it is time-ordered)."""
        return self.order_by("-created_at", "-id")


class TaskRecordManager(models.Manager.from_queryset(TaskRecordQuerySet)):  # type: ignore[misc]
    """``TaskRecord.objects``: the QuerySet's methods on the manager."""
