"""The shop's page: start tasks for a product and follow their progress bars."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from boogie_tasks.models import TaskRecord

from shop.models import Product
from shop.tasks import reprice, summarize_reviews

RECENT = 12  # runs shown on the page

# What the buttons start: label, task, keyword arguments.
ACTIONS = {
    "summarize": ("Summarize reviews", summarize_reviews, {}),
    "reprice": ("Reprice +5 %", reprice, {"percent": 5}),
    "slow": ("Reprice slowly (cancel me)", reprice, {"percent": 5, "shops": 60}),
}


def anyone_may(user: Any, record: TaskRecord, action: str) -> bool:
    """The demo's ``BOOGIE_TASKS_PERMISSION``: every visitor may see and cancel."""
    return True


def index(request: HttpRequest) -> HttpResponse:
    """The products with a button per task, and the latest runs with live bars."""
    products = Product.objects.order_by("pk")
    names = {str(product.pk): product.name for product in products}
    records = list(TaskRecord.objects.order_by("-created_at", "-id")[:RECENT])
    for record in records:
        record.label = f"{record.task_name.rsplit('.', 1)[-1]} for {names.get(record.object_id)}"
    actions = [(key, label) for key, (label, _, _) in ACTIONS.items()]
    context = {"products": products, "records": records, "actions": actions}
    return render(request, "shop/index.html", context)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """Start a task for a product, then show the page again (its bar first)."""
    product = get_object_or_404(Product, pk=request.POST.get("product"))
    action = request.POST.get("action", "")
    if action != "all" and action not in ACTIONS:
        return HttpResponseBadRequest(f"unknown action {action!r}")
    for key, (_, task, options) in ACTIONS.items():
        if action in ("all", key):
            task.delayed(product, **options)
    return redirect("index")
