"""JSON status of a record, and its cancellation, over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST, require_safe

from boogie_tasks.models import TaskRecord
from boogie_tasks.permissions import Action, has_permission
from boogie_tasks.status import TaskStatus

__all__ = ["cancel", "record_payload", "status"]


def record_payload(record: TaskRecord) -> dict[str, Any]:
    """Return the record as the JSON the status view sends.

    A superset of celery-progress's payload (``complete``, ``success``,
    ``progress{pending, current, total, percent, description}``, ``result``),
    so that front ends written for it can read ours.
    """
    finished = record.is_finished
    successful = record.status == TaskStatus.SUCCESSFUL
    percent = record.progress_percent
    payload: dict[str, Any] = {
        "id": str(record.id),
        "task": record.task_name,
        "status": str(record.status),
        "status_display": str(TaskStatus(record.status).label),
        "complete": finished,
        # celery-progress: None while running, then whether it went well.
        "success": successful if finished else None,
        "cancel_requested": record.cancel_requested,
        "progress": {
            "pending": record.status in TaskStatus.waiting(),
            "current": record.progress_current,
            "total": record.progress_total,
            # A number for celery-progress front ends; "total": null tells it is unknown.
            "percent": round(percent, 2) if percent is not None else 0.0,
            "description": record.progress_message,
            "eta_seconds": _rounded(record.eta_seconds),
        },
        "attempts": record.attempts,
        "created_at": _iso(record.created_at),
        "run_at": _iso(record.run_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
    }
    if successful:
        payload["result"] = record.result
    elif finished:
        # celery-progress puts the failure's text in "result"; ours is in "error" too.
        payload["error"] = record.error or str(payload["status_display"])
        payload["result"] = payload["error"]
    return payload


@never_cache
@require_safe
def status(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """Return the record's status, progress and outcome; 404 if unknown or not visible."""
    record = _get_record(request, pk, "view")
    if isinstance(record, JsonResponse):
        return record
    return JsonResponse(record_payload(record))


@never_cache
@csrf_protect
@require_POST
def cancel(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """Cancel the record and return its status; a final record is left as it is.

    The answer carries ``"canceled"``: whether the record is (or will be) cancelled.
    """
    record = _get_record(request, pk, "cancel")
    if isinstance(record, JsonResponse):
        return record
    canceled = record.cancel()
    record.refresh_from_db()
    return JsonResponse({**record_payload(record), "canceled": canceled})


def _get_record(request: HttpRequest, pk: uuid.UUID, action: Action) -> TaskRecord | JsonResponse:
    """The record, if the user may see it (and act on it), else a JSON error answer.

    The error is returned, not raised, so that ``never_cache`` marks it too: a
    404 is cacheable by default, and a record may become visible after a login.
    """
    user = getattr(request, "user", None)
    # The traceback is never sent, so never read.
    record = TaskRecord.objects.defer("traceback").filter(pk=pk).first()
    if record is None or not has_permission(user, record, "view"):
        # The same answer for "unknown" and "not yours", so ids cannot be probed.
        return JsonResponse({"detail": _("No such task.")}, status=404)
    if action != "view" and not has_permission(user, record, action):
        return JsonResponse({"detail": _("You may not cancel this task.")}, status=403)
    return record


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
