"""Turning a task's call into its record: checked fields, the INSERT, unique and cached runs."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from boogie_tasks import transitions
from boogie_tasks.conf import settings
from boogie_tasks.exceptions import InvalidState, InvalidTaskArguments
from boogie_tasks.jsonutil import to_json
from boogie_tasks.models import TaskRecord
from boogie_tasks.validation import check_object, label

if TYPE_CHECKING:
    from boogie_tasks.task import Task

__all__ = ["cached", "create", "digest", "fields", "insert", "prepare"]


def prepare(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check a call's arguments and return its record's fields; nothing is written.

    Raises:
        InvalidTaskArguments: naming the task and the argument.
    """
    if not args:
        raise InvalidTaskArguments(
            f"{task.name}: the first argument must be a saved model instance; none given"
        )
    obj = check_object(task.name, args[0])
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidTaskArguments(f"{task.name}: {exc}") from None
    limit = int(settings.MAX_ARGUMENT_SIZE)
    json_args = [
        to_json(value, task=task.name, what=label(bound, index), limit=limit)
        for index, value in enumerate(args[1:], start=1)
    ]
    json_kwargs = {
        key: to_json(value, task=task.name, what=f"argument {key!r}", limit=limit)
        for key, value in kwargs.items()
    }
    content_type = ContentType.objects.get_for_model(obj)
    return fields(task, content_type.pk, str(obj.pk), json_args, json_kwargs)


def fields(
    task: Task[Any, Any],
    content_type_id: int,
    object_id: str,
    json_args: list[Any],
    json_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The record's fields for checked arguments (also used by recurring runs)."""
    args_hash = digest(json.dumps(_by_name(task, json_args, json_kwargs), sort_keys=True))
    unique_key = None
    if task.unique:
        parts = [task.name, str(content_type_id), object_id]
        if task.unique == "args":
            parts.append(args_hash)
        unique_key = digest("\x1f".join(parts))
    limits = (("time_limit", task.time_limit), ("soft_time_limit", task.soft_time_limit))
    celery = {name: value for name, value in limits if value is not None}
    options: dict[str, Any] = (
        {"on_broker_error": task.on_broker_error} if task.on_broker_error else {}
    )
    if celery:
        options["celery"] = celery
    return {
        "task_name": task.name,
        "content_type_id": content_type_id,
        "object_id": object_id,
        "args": json_args,
        "kwargs": json_kwargs,
        "args_hash": args_hash,
        "unique_key": unique_key,
        "owner": task.owner,
        "queue": task.queue,
        "priority": task.priority,
        "max_attempts": task.retries + 1,
        "options": options,
    }


def _by_name(task: Task[Any, Any], json_args: list[Any], json_kwargs: dict[str, Any]) -> Any:
    """The arguments by parameter name: ``f(obj, 1)`` and ``f(obj, n=1)`` are one call.

    Defaults are not filled in. Arguments that no longer fit the signature (a
    recurring entry made before the function changed) are hashed as they are.
    """
    try:
        bound = task.signature.bind(None, *json_args, **json_kwargs)
    except TypeError:
        return [json_args, json_kwargs]
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(task.signature.parameters)))
    return arguments


def create(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], status: str, **extra: Any
) -> TaskRecord:
    """Check the arguments, then INSERT the record (never deduplicated)."""
    prepared = prepare(task, args, kwargs)
    prepared.pop("unique_key")
    return transitions.create(TaskRecord(status=status, **prepared, **extra))


def insert(
    task: Task[Any, Any], fields: dict[str, Any], status: str, **extra: Any
) -> tuple[TaskRecord, bool]:
    """INSERT the record; for a unique task, return the unfinished one if it exists.

    The database decides (a partial unique constraint): the losing INSERT
    fails in its own savepoint and the winner is returned, with False.
    """
    if not fields["unique_key"]:
        return transitions.create(TaskRecord(status=status, **fields, **extra)), True
    for _ in range(3):
        try:
            with transaction.atomic(using=router.db_for_write(TaskRecord)):
                return transitions.create(TaskRecord(status=status, **fields, **extra)), True
        except IntegrityError:
            records = TaskRecord.objects.using(router.db_for_write(TaskRecord))
            winner = records.unfinished().filter(unique_key=fields["unique_key"]).first()
            if winner is not None:
                return winner, False
            # The winner finished in between: try the INSERT again.
    raise InvalidState(f"{task.name}: could not insert a unique record; try again")


def cached(task: Task[Any, Any], fields: dict[str, Any]) -> TaskRecord | None:
    """The newest successful record of the same call within ``cache_for`` seconds."""
    since = timezone.now() - datetime.timedelta(seconds=float(task.cache_for or 0))
    return (
        TaskRecord.objects.successful()
        .filter(
            task_name=task.name,
            content_type_id=fields["content_type_id"],
            object_id=fields["object_id"],
            args_hash=fields["args_hash"],
            finished_at__gte=since,
        )
        .order_by("-finished_at")
        .first()
    )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
