"""A page of progress bars for the browser tests of the widget."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from boogie_tasks.models import TaskRecord


def progress_page(request: HttpRequest) -> HttpResponse:
    """One bar per ``?id=``: the record when it exists, else the bare id (a 404 to show)."""
    ids = request.GET.getlist("id")
    found = {str(record.pk): record for record in TaskRecord.objects.filter(pk__in=ids)}
    context = {
        "items": [found.get(record_id, record_id) for record_id in ids],
        "interval": int(request.GET.get("interval", 1000)),
        "cancel": request.GET.get("cancel") == "1",
    }
    return render(request, "testapp/progress.html", context)
