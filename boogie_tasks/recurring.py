"""Recurring runs: one django-celery-beat ``PeriodicTask`` per object, arguments and schedule."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import models

from boogie_tasks import publishing, recording, registry
from boogie_tasks.scheduling import SPAWN_NAME, beat_schedule
from boogie_tasks.validation import check_object

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

    from boogie_tasks.models import TaskRecord
    from boogie_tasks.task import Task

__all__ = ["every", "periodic", "spawn"]

# The using() options an entry keeps for its firings (besides the owner).
KEPT_OPTIONS = ("queue", "priority", "on_broker_error")


def every(
    task: Task[Any, Any], schedule: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PeriodicTask:
    """Find or make the entry that fires ``boogie_tasks.spawn`` for this call on ``schedule``."""
    from django_celery_beat.models import PeriodicTask

    fields = recording.prepare(task, args, kwargs)
    kind, row = beat_schedule(task.name, schedule)
    digest = recording.digest(f"{fields['args_hash']}|{kind}|{row.pk}")[:16]
    prefix = _prefix(task.name, fields["content_type_id"], fields["object_id"])
    spawned = {
        "task_name": task.name,
        "content_type_id": fields["content_type_id"],
        "object_id": fields["object_id"],
        "args": fields["args"],
        "kwargs": fields["kwargs"],
    }
    if overrides := _overrides(task):
        spawned["options"] = overrides
    entry, created = PeriodicTask.objects.get_or_create(
        name=f"{prefix}{digest}",
        defaults={"task": SPAWN_NAME, kind: row, "kwargs": json.dumps(spawned)},
    )
    if not created and json.loads(entry.kwargs or "{}") != spawned:
        # The same recurring run asked for again with other using() options: the last wins.
        entry.kwargs = json.dumps(spawned)
        entry.save(update_fields=["kwargs"])
    return entry


def periodic(task: Task[Any, Any], obj: models.Model | None = None) -> models.QuerySet[Any]:
    """The task's entries, for one object or all."""
    from django.contrib.contenttypes.models import ContentType
    from django_celery_beat.models import PeriodicTask

    entries = PeriodicTask.objects.filter(task=SPAWN_NAME)
    if obj is None:
        return entries.filter(name__startswith=f"{task.name} ")
    obj = check_object(task.name, obj)
    content_type = ContentType.objects.get_for_model(obj)
    return entries.filter(name__startswith=_prefix(task.name, content_type.pk, str(obj.pk)))


def spawn(
    task: Task[Any, Any],
    content_type_id: int,
    object_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> TaskRecord:
    """One firing: a new READY record, published after commit, with the entry's options."""
    task = _with_overrides(task, options or {})
    fields = recording.fields(task, content_type_id, object_id, args, kwargs)
    return publishing.queue(task, fields)


def _overrides(task: Task[Any, Any]) -> dict[str, Any]:
    """What a ``using()`` copy changed, as JSON, to keep in the entry."""
    base = registry.get(task.name)
    overrides: dict[str, Any] = {
        name: getattr(task, name)
        for name in KEPT_OPTIONS
        if getattr(task, name) != getattr(base, name)
    }
    if task.owner is not None and task.owner != base.owner:
        overrides["owner_id"] = task.owner.pk
    return overrides


def _with_overrides(task: Task[Any, Any], overrides: dict[str, Any]) -> Task[Any, Any]:
    """The task with the options an entry kept, through ``using()``; a deleted owner is dropped."""
    changes = {name: value for name, value in overrides.items() if name in KEPT_OPTIONS}
    if overrides.get("owner_id") is not None:
        from django.contrib.auth import get_user_model

        users = get_user_model()._default_manager
        changes["owner"] = users.filter(pk=overrides["owner_id"]).first()
    return task.using(**changes) if changes else task


def _prefix(name: str, content_type_id: int, object_id: str) -> str:
    # PeriodicTask.name is at most 200 characters: long names are cut, the digest decides.
    return f"{name} {content_type_id}:{object_id} "[:180]
