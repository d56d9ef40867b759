"""``{% task_progress record %}``: a live progress bar for a task record."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext

from boogie_tasks.models import TaskRecord
from boogie_tasks.permissions import has_permission
from boogie_tasks.views import record_payload

register = template.Library()

DEFAULT_INTERVAL = 1000  # milliseconds between two status requests


@register.inclusion_tag("boogie_tasks/progress.html", takes_context=True)
def task_progress(
    context: template.Context,
    record: TaskRecord | uuid.UUID | str,
    interval: int = DEFAULT_INTERVAL,
    cancel: bool = False,
    assets: bool = True,
    max_failures: int = 5,
) -> dict[str, Any]:
    """Render a progress bar that follows the record until it is final.

    Args:
        record: a ``TaskRecord``, or its id (the bar then starts empty). A record
            the request's user may not see (``BOOGIE_TASKS_PERMISSION``) is
            drawn as an id is; a final one is not polled.
        interval: milliseconds between two status requests while the tab is visible.
        cancel: show a button that cancels the run (``POST tasks/<id>/cancel/``).
        assets: include ``progress.js`` and ``progress.css``; pass False when the
            page loads them once itself.
        max_failures: failed requests in a row before the bar gives up with an error.
    """
    if isinstance(record, TaskRecord):
        # The rule of GET tasks/<id>/, for the request's user: nothing of a
        # record they may not see (the bar then starts empty, as for an id).
        user = getattr(context.get("request"), "user", None)
        visible = has_permission(user, record, "view")
        record_id, payload = str(record.pk), record_payload(record) if visible else None
    else:
        record_id, payload = str(uuid.UUID(str(record))), None
    try:
        status_url = reverse("boogie_tasks:status", args=[record_id])
        cancel_url = reverse("boogie_tasks:cancel", args=[record_id])
    except NoReverseMatch:
        raise template.TemplateSyntaxError(
            "task_progress needs the status API in the URLconf: "
            'path("tasks/", include("boogie_tasks.urls"))'
        ) from None
    progress = payload["progress"] if payload else {}
    known_total = progress.get("total") is not None or (payload or {}).get("success") is True
    return {
        "record_id": record_id,
        "payload": payload,
        "status_url": status_url,
        "cancel_url": cancel_url if cancel else "",
        "csrf_token": context.get("csrf_token", "") if cancel else "",
        "interval": max(int(interval), 50),
        "max_failures": max(int(max_failures), 1),
        "assets": assets,
        # Formatted here: a CSS width needs a dot whatever the locale.
        "width": f"{progress['percent']:.2f}" if known_total else "",
        "percent_text": f"{int(progress['percent'])}%" if known_total else "",
        "result_text": _result_text(payload),
        "eta_text": _eta_text(payload),
        # As progress.js draws them: no message after success, "Canceled" once.
        "message_text": "" if not payload or payload["success"] else progress["description"],
        "error_text": ""
        if not payload or payload.get("error") == payload["status_display"]
        else payload.get("error", ""),
    }


def _eta_text(payload: dict[str, Any] | None) -> str:
    """The ETA as progress.js writes it, so that the first render shows it too."""
    seconds = (payload or {}).get("progress", {}).get("eta_seconds")
    if not payload or payload["status"] != "RUNNING" or seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        time = f"{seconds} s"
    elif seconds < 3600:
        time = f"{seconds // 60} min {seconds % 60} s"
    else:
        time = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return gettext("about {time} left").replace("{time}", time)


def _result_text(payload: dict[str, Any] | None) -> str:
    """The result as the widget shows it: a string as it is, anything else as JSON."""
    if not payload or payload.get("success") is not True or payload.get("result") is None:
        return ""
    result = payload["result"]
    if isinstance(result, str):
        return result
    # Compact, as JSON.stringify() writes it when progress.js updates the bar.
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))
