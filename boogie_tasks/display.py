"""How a record reads to a person: status badges, progress, times left, its attempts."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from boogie_tasks.jsonutil import cut
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus

__all__ = [
    "attempts_table",
    "eta_display",
    "load_objects",
    "object_link",
    "progress_display",
    "progress_text",
    "status_badge",
    "traceback_block",
]

# Badge colours: text on background, readable in the admin's light and dark themes.
_BADGE_COLOURS: dict[str, tuple[str, str]] = {
    TaskStatus.PAUSED: ("#fff", "#6c757d"),
    TaskStatus.SCHEDULED: ("#fff", "#6f42c1"),
    TaskStatus.READY: ("#fff", "#0d6efd"),
    TaskStatus.RUNNING: ("#000", "#ffc107"),
    TaskStatus.SUCCESSFUL: ("#fff", "#198754"),
    TaskStatus.FAILED: ("#fff", "#dc3545"),
    TaskStatus.CANCELED: ("#fff", "#495057"),
}


def progress_text(record: TaskRecord) -> str:
    """Progress as "current / total (percent)"."""
    percent = record.progress_percent
    if record.progress_total:
        return f"{record.progress_current} / {record.progress_total} ({percent:.0f}%)"
    return str(record.progress_current) if record.progress_current else "-"


def progress_display(record: TaskRecord) -> SafeString:
    """A native ``<progress>`` bar and "current / total (percent)"; no JavaScript."""
    text = progress_text(record)
    percent = record.progress_percent
    if percent is not None:
        return format_html(
            '<progress class="boogie-progress" max="100" value="{}" title="{}"></progress> {}',
            f"{percent:.0f}",
            record.progress_message,
            text,
        )
    if record.status == TaskStatus.RUNNING:
        # No total: a bar without a value is the browser's own "busy" bar.
        return format_html(
            '<progress class="boogie-progress" title="{}"></progress> {}',
            record.progress_message,
            text,
        )
    return format_html("{}", text)


def status_badge(record: TaskRecord) -> SafeString:
    """The status as a small coloured label."""
    colour, background = _BADGE_COLOURS.get(record.status, ("#fff", "#6c757d"))
    cancelling = record.status == TaskStatus.RUNNING and record.cancel_requested
    return format_html(
        '<span class="boogie-status boogie-status-{}" style="color:{};background:{};'
        'padding:1px 6px;border-radius:8px;font-size:11px;white-space:nowrap">{}{}</span>',
        str(record.status).lower(),
        colour,
        background,
        TaskStatus(record.status).label if record.status in TaskStatus.values else record.status,
        _(" (cancelling)") if cancelling else "",
    )


def eta_display(record: TaskRecord) -> str:
    """Time left as "1 h 2 min", "3 min 5 s" or "12 s"; "-" when unknown."""
    seconds = record.eta_seconds
    if seconds is None or record.is_finished:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def traceback_block(record: TaskRecord) -> SafeString | str:
    """The traceback in a scrollable, escaped ``<pre>`` block."""
    if not record.traceback:
        return "-"
    return format_html(
        '<pre class="boogie-traceback" style="white-space:pre-wrap;max-height:40em;'
        'overflow:auto;margin:0">{}</pre>',
        record.traceback,
    )


def load_objects(records: list[TaskRecord]) -> None:
    """Fetch the objects of a page of records, one query per model, for ``object_link``.

    An object_id its model's primary key cannot take, an uninstalled model or a
    deleted object leaves that record without one (shown by model and pk).
    """
    wanted: dict[int, set[Any]] = {}
    for record in records:
        wanted.setdefault(record.content_type_id, set()).add(record.object_id)
    found: dict[tuple[int, str], Any] = {}
    for content_type_id, object_ids in wanted.items():
        model = ContentType.objects.get_for_id(content_type_id).model_class()
        if model is None:
            continue
        keys = []
        for object_id in object_ids:
            try:
                keys.append(model._meta.pk.to_python(object_id))
            except (ValidationError, ValueError, TypeError):
                pass  # written by hand: shown by model and pk
        for obj in model._base_manager.filter(pk__in=keys):
            found[content_type_id, str(obj.pk)] = obj
    for record in records:
        record._display_object = found.get((record.content_type_id, record.object_id))  # type: ignore[attr-defined]


def object_link(record: TaskRecord) -> str:
    """A link to the object's admin page, named by its ``str()`` when it was loaded."""
    content_type = record.content_type
    label = f"{content_type.app_label}.{content_type.model} {record.object_id}"
    obj = getattr(record, "_display_object", None)
    if obj is not None:
        label = cut(str(obj), 80)
    try:
        url = reverse(
            f"admin:{content_type.app_label}_{content_type.model}_change",
            args=[quote(record.object_id)],
        )
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


def attempts_table(record: TaskRecord) -> SafeString | str:
    """The record's attempts as a table: number, status, start, end, worker and error."""
    if not record.history:
        return "-"
    header = format_html_join(
        "", "<th>{}</th>", [(_(name),) for name in ("attempt", "status", "started", "finished",
                                                   "worker", "error")]
    )  # fmt: skip
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (_attempt_cells(entry) for entry in record.history),
    )
    return format_html(
        '<table class="boogie-attempts"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        header,
        rows,
    )


def _attempt_cells(entry: dict[str, Any]) -> tuple[str, ...]:
    # Entries written before 0.2 have only attempt, error and at (their end).
    error = entry.get("error") or ""
    return (
        str(entry.get("attempt", "")),
        str(entry.get("status", TaskStatus.FAILED if error else "")),
        _time(entry.get("started_at")),
        _time(entry.get("finished_at") or entry.get("at")),
        str(entry.get("worker") or "-"),
        error or "-",
    )


def _time(value: str | None) -> str:
    """An ISO time as "YYYY-MM-DD HH:MM:SS" (UTC as stored); "-" when missing."""
    return value[:19].replace("T", " ") if value else "-"
