"""The admin of task records, and an inline that shows one object's runs."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from boogie_tasks import operations, registry
from boogie_tasks.display import (
    attempts_table,
    eta_display,
    load_objects,
    object_link,
    progress_display,
    status_badge,
    traceback_block,
)
from boogie_tasks.exceptions import BoogieTasksError
from boogie_tasks.models import TaskRecord
from boogie_tasks.querysets import TaskRecordQuerySet
from boogie_tasks.status import TaskStatus

logger = logging.getLogger("boogie_tasks")

_FIELDS = (
    "id", "task_name", "status_badge", "object_link", "args", "kwargs", "result", "error",
    "traceback_block", "progress_message",
    "progress_display", "eta_display", "created_at", "run_at", "queued_at", "started_at",
    "finished_at", "heartbeat_at", "attempts", "max_attempts", "attempts_table", "worker", "owner",
    "queue", "priority", "options", "cancel_requested", "args_hash", "unique_key",
)  # fmt: skip


class ReadOnlyMixin:
    """Records are written by runs, never by hand; shared columns of both admins."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, record: TaskRecord) -> SafeString:
        return status_badge(record)

    @admin.display(description=_("progress"))
    def progress_display(self, record: TaskRecord) -> SafeString:
        return progress_display(record)

    @admin.display(description=_("ETA"))
    def eta_display(self, record: TaskRecord) -> str:
        return eta_display(record)

    @admin.display(description=_("object"))
    def object_link(self, record: TaskRecord) -> str:
        return object_link(record)


class ModelListFilter(admin.SimpleListFilter):
    """The models tasks ran for: found by an indexed lookup per model, no DISTINCT."""

    title = _("model")
    parameter_name = "content_type__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        records = TaskRecord.objects.all()
        return [
            (str(content_type.pk), f"{content_type.app_label} | {content_type.name}")
            for content_type in ContentType.objects.order_by("app_label", "model")
            # The first column of boogie_task_object_idx: one index probe each.
            if records.filter(content_type_id=content_type.pk).exists()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        value = self.value()
        return (
            queryset.filter(content_type_id=int(value)) if value and value.isdigit() else queryset
        )


class TaskListFilter(admin.SimpleListFilter):
    """The registered tasks that have records: an indexed lookup per task, no DISTINCT."""

    title = _("task")
    parameter_name = "task_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        records = TaskRecord.objects.all()
        return [
            (name, name)
            for name in sorted(registry.all_tasks())
            # The first column of boogie_task_name_idx: one index probe each.
            if records.filter(task_name=name).exists()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        value = self.value()
        return queryset.filter(task_name=value) if value else queryset


class _RecordChangeList(ChangeList):
    """The changelist, with each page's objects loaded in one query per model."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        load_objects(list(self.result_list))


@admin.register(TaskRecord)
class TaskRecordAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Runs of every task: filter by task, status and model; search by id; act on runs."""

    list_display = (
        "record_id", "task_name", "status_badge", "object_link", "progress_display",
        "eta_display", "attempts", "created_at", "finished_at",
    )  # fmt: skip
    list_display_links = ("record_id",)
    list_filter = ("status", TaskListFilter, ModelListFilter)
    search_fields = ("id", "object_id", "task_name")
    list_select_related = ("content_type",)
    date_hierarchy = "created_at"
    readonly_fields = _FIELDS
    fields = _FIELDS
    show_full_result_count = False
    actions = ("run_paused", "cancel_records", "retry_records", "delete_finished")

    @admin.display(description=_("id"), ordering="id")
    def record_id(self, record: TaskRecord) -> SafeString:
        # On one line, small: a UUID must not push the other columns off the screen.
        return format_html(
            '<span class="boogie-id" style="white-space:nowrap;font-family:monospace;'
            'font-size:0.85em">{}</span>', record.pk,
        )  # fmt: skip

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _RecordChangeList

    @admin.display(description=_("traceback"))
    def traceback_block(self, record: TaskRecord) -> SafeString | str:
        return traceback_block(record)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        record = super().get_object(request, object_id, from_field)
        if record is not None:
            load_objects([record])
        return record

    @admin.display(description=_("history"))
    def attempts_table(self, record: TaskRecord) -> SafeString | str:
        return attempts_table(record)

    # Permissions: acting on a run takes the change permission, as cancelling over HTTP does.

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Whether the user may run, cancel and retry records."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A queued or running record is never deleted from here: cancel it first.
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Django's own would delete running records too; delete_finished replaces it.
        actions.pop("delete_selected", None)
        return actions

    # Actions

    @admin.action(description=_("Run selected paused records here"), permissions=["run"])
    def run_paused(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        """Run the PAUSED records in this request, one after the other."""
        paused = list(queryset.filter(status=TaskStatus.PAUSED).order_by("created_at", "id"))
        skipped = queryset.exclude(status=TaskStatus.PAUSED).count()
        succeeded = 0
        for record in paused:
            try:
                record.run()
            except Exception as exc:
                # run() recorded the failure; tell the user which one and why.
                record.refresh_from_db()
                self.message_user(
                    request,
                    _("%(task)s record %(id)s failed: %(error)s")
                    % {"task": record.task_name, "id": record.pk, "error": record.error or exc},
                    messages.ERROR,
                )
            else:
                succeeded += 1
        if succeeded:
            self.message_user(
                request,
                ngettext("Ran %d record successfully.", "Ran %d records successfully.", succeeded)
                % succeeded,
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "Skipped %d record that is not paused.",
                    "Skipped %d records that are not paused.",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected records"), permissions=["run"])
    def cancel_records(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        """Cancel waiting records at once; ask running ones to stop."""
        cancelled = stopping = final = 0
        for record in queryset.iterator():
            was_running = record.status == TaskStatus.RUNNING
            if record.cancel():
                if was_running and record.status == TaskStatus.RUNNING:
                    stopping += 1
                else:
                    cancelled += 1
            else:
                final += 1
        if cancelled:
            self.message_user(
                request,
                ngettext("Cancelled %d record.", "Cancelled %d records.", cancelled) % cancelled,
                messages.SUCCESS,
            )
        if stopping:
            self.message_user(
                request,
                ngettext(
                    "Asked %d running record to stop.",
                    "Asked %d running records to stop.",
                    stopping,
                )
                % stopping,
                messages.SUCCESS,
            )
        if final:
            self.message_user(
                request,
                ngettext(
                    "%d record was already finished.", "%d records were already finished.", final
                )
                % final,
                messages.WARNING,
            )

    @admin.action(description=_("Retry selected finished records"), permissions=["run"])
    def retry_records(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        """Make a new READY record of the same call for each finished record."""
        retried = 0
        for record in queryset.order_by("created_at", "id").iterator():
            try:
                operations.retry(record)
            except BoogieTasksError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                retried += 1
        if retried:
            self.message_user(
                request,
                ngettext(
                    "Retried %d record: a new record is queued.",
                    "Retried %d records: new records are queued.",
                    retried,
                )
                % retried,
                messages.SUCCESS,
            )

    @admin.action(description=_("Delete selected finished records"), permissions=["delete"])
    def delete_finished(self, request: HttpRequest, queryset: TaskRecordQuerySet) -> None:
        """Delete the selected records in a final state; leave the others."""
        removed = sum(operations.clean(queryset).values())
        kept = queryset.count()
        logger.info("admin deleted finished records removed=%s user=%s", removed, request.user)
        self.message_user(
            request,
            ngettext("Deleted %d finished record.", "Deleted %d finished records.", removed)
            % removed,
            messages.SUCCESS,
        )
        if kept:
            self.message_user(
                request,
                ngettext(
                    "Kept %d record that is not finished.",
                    "Kept %d records that are not finished.",
                    kept,
                )
                % kept,
                messages.WARNING,
            )


class TaskRecordInline(ReadOnlyMixin, GenericTabularInline):
    """Add to any model's admin (``inlines = [TaskRecordInline]``) to show its runs."""

    model = TaskRecord
    ct_field = "content_type"
    ct_fk_field = "object_id"
    fields = (
        "task_name", "status_badge", "progress_display", "eta_display", "error", "created_at",
        "finished_at",
    )  # fmt: skip
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at", "-id")
    verbose_name_plural = _("task runs")
