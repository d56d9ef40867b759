"""Checks of a task's definition (at decoration) and of a call's object (at call time)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from django.db import models

from boogie_tasks.exceptions import InvalidTask, InvalidTaskArguments

if TYPE_CHECKING:
    from boogie_tasks.task import Task

BROKER_ERROR_CHOICES = ("retry", "run", "fail")


def label(bound: inspect.BoundArguments, index: int) -> str:
    """Name the positional argument at ``index`` as the function calls it."""
    position = 0
    for param in bound.signature.parameters.values():
        if param.kind == param.VAR_POSITIONAL:
            return f"argument *{param.name}[{index - position}]"
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            break
        if position == index:
            return f"argument {param.name!r}"
        position += 1
    return f"argument {index}"


def check_object(name: str, obj: Any) -> models.Model:
    if not isinstance(obj, models.Model):
        raise InvalidTaskArguments(
            f"{name}: the first argument must be a saved model instance, not {obj!r}"
        )
    if obj._meta.pk is None or getattr(obj._meta, "is_composite_pk", False):
        raise InvalidTaskArguments(
            f"{name}: {obj._meta.label} has a composite primary key; "
            "tasks need a single-column primary key"
        )
    if obj.pk is None or obj._state.adding:
        raise InvalidTaskArguments(
            f"{name}: the {obj._meta.label} instance {obj!r} is not saved; save it first"
        )
    if len(str(obj.pk)) > 255:
        raise InvalidTaskArguments(
            f"{name}: the primary key of {obj._meta.label} is longer than 255 characters"
        )
    return obj


def check_owner(name: str, owner: Any) -> models.Model | None:
    from django.contrib.auth import get_user_model

    # request.user may be AnonymousUser: no owner, rather than an error in every view.
    if not isinstance(owner, models.Model) and getattr(owner, "is_anonymous", False):
        return None
    if not isinstance(owner, get_user_model()) or owner.pk is None:
        raise InvalidTask(f"{name}: owner must be a saved user, not {owner!r}")
    return owner


def check_options(task: Task[Any, Any]) -> None:
    """Refuse a function or options that cannot work, at decoration time."""
    func, name = task.func, task.name
    if "<locals>" in func.__qualname__ or "<lambda>" in func.__qualname__:
        raise InvalidTask(
            f"@task: {func.__module__}.{func.__qualname__} must be defined at module "
            "level, so that a worker can find it by name"
        )
    if inspect.iscoroutinefunction(func):
        raise InvalidTask(f"@task: {func.__qualname__} is a coroutine function; not supported")
    parameters = list(inspect.signature(func).parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise InvalidTask(
            f"@task: {func.__qualname__} must take the model instance as its first "
            "positional parameter"
        )
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidTask(f"@task: name must be a string of 1 to 255 characters, not {name!r}")
    if not isinstance(task.queue, str) or len(task.queue) > 255:
        raise InvalidTask(f"{name}: queue must be a string, not {task.queue!r}")
    if task.priority is not None and (
        isinstance(task.priority, bool) or not isinstance(task.priority, int)
    ):
        raise InvalidTask(f"{name}: priority must be an integer, not {task.priority!r}")
    if isinstance(task.retries, bool) or not isinstance(task.retries, int) or task.retries < 0:
        raise InvalidTask(f"{name}: retries must be a whole number >= 0, not {task.retries!r}")
    if not _seconds(task.retry_backoff):
        raise InvalidTask(f"{name}: retry_backoff must be seconds >= 0, not {task.retry_backoff!r}")
    retry_on = task.retry_on
    if not isinstance(retry_on, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
    ):
        raise InvalidTask(
            f"{name}: retry_on must be a tuple of exception classes, not {retry_on!r}"
        )
    if task.unique not in (True, False, "args"):
        raise InvalidTask(f"{name}: unique must be True, False or 'args', not {task.unique!r}")
    if task.cache_for is not None and not _seconds(task.cache_for):
        raise InvalidTask(f"{name}: cache_for must be seconds >= 0, not {task.cache_for!r}")
    for option in ("time_limit", "soft_time_limit"):
        value = getattr(task, option)
        if value is not None and (not _seconds(value) or value == 0):
            raise InvalidTask(f"{name}: {option} must be seconds > 0, not {value!r}")
    if task.on_broker_error not in (None, *BROKER_ERROR_CHOICES):
        raise InvalidTask(
            f"{name}: on_broker_error must be one of {', '.join(BROKER_ERROR_CHOICES)}, "
            f"not {task.on_broker_error!r}"
        )


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
