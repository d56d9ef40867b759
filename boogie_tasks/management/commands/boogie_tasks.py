"""``manage.py boogie_tasks``: list, show, run, cancel, retry, clean and count task records."""

from __future__ import annotations

import datetime
import json
import unicodedata
import uuid
from argparse import ArgumentParser
from collections.abc import Sequence
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from boogie_tasks import operations
from boogie_tasks.display import eta_display, progress_text
from boogie_tasks.exceptions import BoogieTasksError, InvalidState
from boogie_tasks.management.arguments import age, object_ref, positive, record_id, status
from boogie_tasks.models import TaskRecord
from boogie_tasks.querysets import TaskRecordQuerySet
from boogie_tasks.status import TaskStatus


class Command(BaseCommand):
    """Inspect and operate task records from the shell."""

    help = (
        "Inspect and operate boogie_tasks task records. An operator's tool: it acts as "
        "no user, so BOOGIE_TASKS_PERMISSION does not apply; whoever runs manage.py may "
        "see and change every record."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="subcommand", required=True)

        listing = subcommands.add_parser("list", help="List records, newest first.")
        self._add_filters(listing, statuses=True, age_help="created longer ago than this")
        listing.add_argument(
            "--limit", type=positive, default=50, help="Most records shown (default: 50)."
        )

        for name, text in [
            ("show", "Print every field of a record and its traceback."),
            ("run", "Run a paused, scheduled or queued record here and now."),
            ("cancel", "Cancel a record (a running one is asked to stop)."),
            ("retry", "Queue a new record of the same call as a finished one."),
        ]:
            sub = subcommands.add_parser(name, help=text)
            sub.add_argument("id", type=record_id, help="The record's id (a UUID).")

        cleaning = subcommands.add_parser(
            "clean", help="Delete finished records in batches; report how many per task."
        )
        self._add_filters(cleaning, statuses=True, age_help="only records created before this")
        cleaning.add_argument(
            "--keep-last",
            action="store_true",
            help="Keep the newest record of each object, per task, however old.",
        )
        cleaning.add_argument(
            "--all",
            action="store_true",
            dest="include_unfinished",
            help="Delete unfinished (queued, running) records too.",
        )
        cleaning.add_argument(
            "--batch-size",
            type=positive,
            default=1000,
            help="Rows read and deleted per query (default: 1000).",
        )
        cleaning.add_argument(
            "--dry-run", action="store_true", help="Count what would go; delete nothing."
        )

        counting = subcommands.add_parser(
            "stats", help="Counts per task and status; run-time percentiles."
        )
        self._add_filters(counting, statuses=True, age_help="only records created before this")
        counting.add_argument(
            "--last",
            type=positive,
            default=1000,
            help="Successful runs per task the percentiles use (default: 1000).",
        )

    def _add_filters(self, parser: ArgumentParser, *, statuses: bool, age_help: str) -> None:
        parser.add_argument("--task", help="Dotted name of the task.")
        if statuses:
            parser.add_argument(
                "--status",
                type=status,
                action="append",
                dest="statuses",
                help=f"One of {', '.join(TaskStatus.values)}; may be repeated.",
            )
        parser.add_argument(
            "--object", type=object_ref, dest="object_ref", help="app_label.model:pk"
        )
        parser.add_argument(
            "--older-than", type=age, help=f"An age such as 30s, 15m, 12h, 30d, 2w: {age_help}."
        )

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        """Dispatch to the subcommand; library errors become CommandError."""
        handler = getattr(self, f"handle_{subcommand}")
        try:
            handler(**options)
        except BoogieTasksError as exc:
            raise CommandError(str(exc)) from exc

    # Subcommands

    def handle_list(self, *, limit: int, **options: Any) -> None:
        """Print a table of records, newest first."""
        records = self._select(options).newest_first().select_related("content_type")
        rows = list(records[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            self.stdout.write("No task records.")
            return
        header = ("id", "task", "status", "object", "progress", "created", "finished")
        table = [
            (
                str(r.pk),
                r.task_name,
                r.status,
                _object_label(r),
                progress_text(r),
                _when(r.created_at),
                _when(r.finished_at),
            )  # fmt: skip
            for r in rows
        ]
        self._table(header, table)
        if more:
            self.stdout.write(f"(showing the newest {limit}; use --limit to see more)")

    def handle_show(self, *, id: uuid.UUID, **options: Any) -> None:
        """Print every field of one record, then its traceback."""
        record = self._get(id)
        width = max(len(field.name) for field in TaskRecord._meta.concrete_fields)
        for field in TaskRecord._meta.concrete_fields:
            if field.name == "traceback":
                continue
            value = getattr(record, field.attname)
            if field.name == "content_type":
                value = _object_label(record).split(":")[0]
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            elif isinstance(value, datetime.datetime):
                value = _when(value)
            line = f"{field.name:<{width}}  {'' if value is None else printable(str(value))}"
            self.stdout.write(line.rstrip())
        self.stdout.write(f"{'object':<{width}}  {printable(_object_label(record))}")
        self.stdout.write(f"{'progress':<{width}}  {printable(progress_text(record))}")
        self.stdout.write(f"{'eta':<{width}}  {eta_display(record)}")
        self.stdout.write("traceback:")
        traceback = printable(record.traceback.rstrip(), keep="\n\t")
        self.stdout.write(traceback if traceback else "  (none)")

    def handle_run(self, *, id: uuid.UUID, **options: Any) -> None:
        """Run a waiting record here and print its result."""
        record = self._get(id)
        try:
            result = record.run()
        except InvalidState:
            raise  # not run at all (not waiting): handle() says why
        except Exception:
            # The run happened and failed; the record holds the error.
            raise CommandError(self._failed(record)) from None
        self.stdout.write(
            f"{record.task_name} record {record.pk}: {record.status}, "
            f"result: {json.dumps(result, sort_keys=True)}"
        )

    def handle_cancel(self, *, id: uuid.UUID, **options: Any) -> None:
        """Cancel a record, or ask a running one to stop."""
        record = self._get(id)
        was_running = record.status == TaskStatus.RUNNING
        if not record.cancel():
            raise CommandError(
                f"{record.task_name} record {record.pk} is already {record.status}; "
                "nothing to cancel"
            )
        if was_running and record.status == TaskStatus.RUNNING:
            self.stdout.write(
                f"{record.task_name} record {record.pk}: RUNNING, asked to stop "
                "(it ends CANCELED at its next progress call)"
            )
        else:
            self.stdout.write(f"{record.task_name} record {record.pk}: {record.status}")

    def handle_retry(self, *, id: uuid.UUID, **options: Any) -> None:
        """Queue a new record of the same call as a finished one."""
        record = self._get(id)
        new = operations.retry(record)
        self.stdout.write(
            f"{record.task_name} record {record.pk} retried as {new.pk} ({new.status})"
        )

    def handle_clean(
        self,
        *,
        older_than: datetime.timedelta | None,
        keep_last: bool,
        include_unfinished: bool,
        batch_size: int,
        dry_run: bool,
        **options: Any,
    ) -> None:
        """Delete records in batches and print how many went per task."""
        statuses = options.get("statuses") or []
        unfinished = [s for s in statuses if s not in TaskStatus.final()]
        if unfinished and not include_unfinished:
            raise CommandError(
                f"--status {unfinished[0]} is not a final state: clean deletes only "
                "SUCCESSFUL, FAILED and CANCELED records unless --all is given"
            )
        removed = operations.clean(
            self._select({**options, "older_than": None}),
            older_than=older_than,
            keep_last=keep_last,
            finished=not include_unfinished,
            batch_size=batch_size,
            dry_run=dry_run,
        )
        verb = "would remove" if dry_run else "removed"
        if not removed:
            self.stdout.write("Nothing to remove.")
            return
        width = max(len(str(n)) for n in removed.values())
        for name, count in removed.items():
            self.stdout.write(f"{verb} {count:>{width}}  {name}")
        total = sum(removed.values())
        self.stdout.write(f"{verb} {total} record{'s' if total != 1 else ''} in all")

    def handle_stats(self, *, last: int, **options: Any) -> None:
        """Print counts per task and status, and run-time percentiles."""
        rows = operations.stats(self._select(options), last=last)
        if not rows:
            self.stdout.write("No task records.")
            return
        header = ("task", *TaskStatus.values, "total", "runs", "p50", "p90", "p99")
        table = [
            (
                row.task_name,
                *(str(row.counts.get(s, 0)) for s in TaskStatus.values),
                str(row.total),
                str(row.runs),
                _duration(row.p50),
                _duration(row.p90),
                _duration(row.p99),
            )
            for row in rows
        ]
        self._table(header, table, right=range(1, len(header)))

    # Helpers

    def _select(self, options: dict[str, Any]) -> TaskRecordQuerySet:
        obj = None
        if options.get("object_ref"):
            app_label, model, pk = options["object_ref"]
            try:
                content_type = ContentType.objects.get_by_natural_key(app_label, model)
            except ContentType.DoesNotExist:
                raise CommandError(f"no model {app_label}.{model} is installed") from None
            obj = (content_type, pk)
        return operations.select(
            task=options.get("task"),
            statuses=options.get("statuses"),
            obj=obj,
            older_than=options.get("older_than"),
        )

    def _get(self, pk: uuid.UUID) -> TaskRecord:
        try:
            return TaskRecord.objects.select_related("content_type").get(pk=pk)
        except TaskRecord.DoesNotExist:
            raise CommandError(f"no task record with id {pk}") from None

    def _failed(self, record: TaskRecord) -> str:
        record.refresh_from_db()
        return printable(f"{record.task_name} record {record.pk}: {record.status}: {record.error}")

    def _table(
        self, header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: range = range(0)
    ) -> None:
        rows = [tuple(printable(str(cell)) for cell in row) for row in rows]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            cells = [
                str(cell).rjust(w) if i in right else str(cell).ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            self.stdout.write("  ".join(cells).rstrip())


def printable(text: str, keep: str = "") -> str:
    """``text`` with control and format characters escaped (``\\x1b``), but those in ``keep``.

    Object ids, errors and messages are user data: a terminal must never act on them.
    """
    return "".join(
        char if char in keep or unicodedata.category(char)[0] != "C"
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )  # fmt: skip


def _object_label(record: TaskRecord) -> str:
    content_type = record.content_type
    return f"{content_type.app_label}.{content_type.model}:{record.object_id}"


def _when(value: datetime.datetime | None) -> str:
    if value is None:
        return "-"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    """Seconds as "0.012s", "3.4s", "2m05s" or "1h02m"; "-" when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
