"""The registry of task names: one task for each dotted path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boogie_tasks.exceptions import InvalidTask, UnknownTask

if TYPE_CHECKING:
    from boogie_tasks.task import Task

_tasks: dict[str, Task[Any, Any]] = {}


def register(task: Task[Any, Any]) -> None:
    """Register a task under its name, refusing a second function for one name."""
    known = _tasks.get(task.name)
    if known is not None and not _same_function(known.func, task.func):
        raise InvalidTask(
            f"a task named {task.name!r} is already registered "
            f"({known.func.__module__}.{known.func.__qualname__}); "
            f"give {task.func.__module__}.{task.func.__qualname__} another name="
        )
    _tasks[task.name] = task


def get(name: str) -> Task[Any, Any]:
    """Return the task registered under ``name``; nothing is imported from a name."""
    try:
        return _tasks[name]
    except KeyError:
        raise UnknownTask(
            f"no task named {name!r} is registered in this process "
            "(is its tasks module in an installed app, and was it imported?)"
        ) from None


def find(name: str) -> Task[Any, Any] | None:
    """Return the task registered under ``name``, or None."""
    return _tasks.get(name)


def all_tasks() -> dict[str, Task[Any, Any]]:
    """Return a copy of the registry, by name."""
    return dict(_tasks)


def _same_function(a: Any, b: Any) -> bool:
    # A module imported twice (reload, runpy) defines the function again: same place, same task.
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
