"""The same trivial work for each peer: fetch one Item by pk, return a small dict."""

from celery import shared_task

from benchproj.models import Item
from boogie_tasks import task


def _payload(item: Item) -> dict:
    return {"pk": item.pk, "name": item.name, "value": item.value}


@task
def fetch_item(item: Item) -> dict:
    """boogie_tasks: the worker loads the item by pk before calling this."""
    return _payload(item)


@shared_task(name="benchproj.tasks.bare_fetch", ignore_result=True)
def bare_fetch(pk: int) -> dict:
    """Bare Celery: no result stored."""
    return _payload(Item.objects.get(pk=pk))


@shared_task(name="benchproj.tasks.dcr_fetch")
def dcr_fetch(pk: int) -> dict:
    """Celery with django-celery-results (result_extended, backend django-db)."""
    return _payload(Item.objects.get(pk=pk))
