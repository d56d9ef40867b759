"""The ``@task`` decorator and the ``Task`` object it returns."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from django.db import models

from boogie_tasks import registry
from boogie_tasks.exceptions import InvalidTask
from boogie_tasks.status import TaskStatus
from boogie_tasks.validation import check_object, check_options, check_owner

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

    from boogie_tasks.models import TaskRecord
    from boogie_tasks.querysets import TaskRecordQuerySet

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Task", "task"]


@dataclasses.dataclass(frozen=True, eq=False)
class Task(Generic[P, R]):
    """A function that runs as a tracked task; calling it runs the plain function."""

    func: Callable[P, R]
    name: str
    queue: str = ""
    priority: int | None = None
    owner: models.Model | None = None
    on_broker_error: str | None = None
    retries: int = 0
    retry_backoff: float = 0.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    unique: bool | str = False
    cache_for: float | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    signature: inspect.Signature = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_options(self)
        object.__setattr__(self, "signature", inspect.signature(self.func))
        # functools.update_wrapper, for a frozen dataclass: the function's name and docs.
        for name in functools.WRAPPER_ASSIGNMENTS:
            if hasattr(self.func, name):
                object.__setattr__(self, name, getattr(self.func, name))
        object.__setattr__(self, "__wrapped__", self.func)

    @functools.cached_property
    def model(self) -> type[models.Model] | None:
        """The model of the object this task takes, from its first parameter's annotation.

        A worker's claim then reads the object in the same round trip. None
        when the annotation is missing, cannot be resolved, or is not a model.
        """
        try:
            hints = typing.get_type_hints(self.func)
        except Exception:  # a name only imported for type checking, say
            return None
        hint = hints.get(next(iter(self.signature.parameters)))
        if isinstance(hint, type) and issubclass(hint, models.Model) and not hint._meta.abstract:
            return hint
        return None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the plain function; nothing is recorded."""
        return self.func(*args, **kwargs)

    # Starting runs

    def call(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run now, in this process, and record it; return the stored JSON result.

        The value is what the function returned as it comes back from JSON (a
        tuple as a list), exactly as a worker stores it. On failure the record
        is FAILED and the exception is raised.
        """
        from boogie_tasks.recording import create
        from boogie_tasks.runner import execute, worker_id

        record = create(self, args, kwargs, TaskStatus.RUNNING, worker=worker_id())
        return cast(R, execute(record, self, args[0], reraise=True))  # type: ignore[arg-type]

    def delayed(self, *args: P.args, **kwargs: P.kwargs) -> TaskRecord:
        """Record the run as READY and send it to a worker once the transaction commits.

        With ``cache_for``, a recent successful record of the same call is returned
        instead; with ``unique``, the unfinished record of the same key.
        """
        from boogie_tasks import publishing, recording

        fields = recording.prepare(self, args, kwargs)
        if self.cache_for:
            cached = recording.cached(self, fields)
            if cached is not None:
                return cached
        return publishing.queue(self, fields)

    def schedule(
        self, when: float | datetime.timedelta | datetime.datetime, /,
        *args: P.args, **kwargs: P.kwargs,
    ) -> TaskRecord:  # fmt: skip
        """Record the run as SCHEDULED; the dispatcher starts it at ``when``.

        ``when``: seconds from now (int or float), a ``timedelta``, or a
        ``datetime`` (naive means the current time zone).
        """
        from boogie_tasks import recording
        from boogie_tasks.scheduling import resolve_when

        run_at = resolve_when(self.name, when)
        fields = recording.prepare(self, args, kwargs)
        return recording.insert(self, fields, TaskStatus.SCHEDULED, run_at=run_at)[0]

    def every(self, schedule: Any, /, *args: P.args, **kwargs: P.kwargs) -> PeriodicTask:
        """Run for this object on a schedule: a django-celery-beat ``PeriodicTask``.

        ``schedule``: a cron string, a ``timedelta`` or a Celery ``crontab``. Each
        firing creates a new record. The same object, arguments and schedule give
        the same ``PeriodicTask`` back; delete or disable it to stop.
        """
        from boogie_tasks import recurring

        return recurring.every(self, schedule, args, kwargs)

    def periodic(self, obj: models.Model | None = None) -> models.QuerySet[PeriodicTask]:
        """This task's recurring runs (``PeriodicTask`` rows), for one object or all."""
        from boogie_tasks import recurring

        return recurring.periodic(self, obj)

    def paused(self, *args: P.args, **kwargs: P.kwargs) -> TaskRecord:
        """Record the run as PAUSED; ``record.run()`` or ``record.enqueue()`` starts it."""
        from boogie_tasks import recording

        return recording.insert(self, recording.prepare(self, args, kwargs), TaskStatus.PAUSED)[0]

    # Reading runs

    def tasks(self, obj: models.Model | None = None) -> TaskRecordQuerySet:
        """All records of this task, newest first; for one object or all."""
        from boogie_tasks.models import TaskRecord

        records = TaskRecord.objects.for_task(self.name)
        if obj is not None:
            records = records.for_object(check_object(self.name, obj))
        return records.newest_first()

    def finished(self, obj: models.Model | None = None) -> TaskRecordQuerySet:
        """Records in a final state (successful, failed, cancelled), newest first."""
        return self.tasks(obj).finished()

    def results(self, obj: models.Model | None = None) -> models.QuerySet[TaskRecord, R]:
        """Results of the successful runs, newest first: a lazy, sliceable sequence."""
        results = self.tasks(obj).successful().values_list("result", flat=True)
        return cast("models.QuerySet[TaskRecord, R]", results)

    def clean(
        self, obj: models.Model | None = None, keep_last: bool = False, finished: bool = True
    ) -> int:
        """Delete records of this task; return how many were deleted.

        Args:
            finished: delete only records in a final state, never a queued or running one.
            keep_last: of the records that would go, keep the newest of each object.
        """
        from boogie_tasks import operations

        # The same batched delete as `manage.py boogie_tasks clean`.
        removed = operations.clean(self.tasks(obj), keep_last=keep_last, finished=finished)
        return sum(removed.values())

    def using(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        owner: Any = None,
        on_broker_error: str | None = None,
    ) -> Task[P, R]:
        """Return a copy of the task with other options; the original is unchanged."""
        changes: dict[str, Any] = {}
        if queue is not None:
            changes["queue"] = queue
        if priority is not None:
            changes["priority"] = priority
        if owner is not None:
            changes["owner"] = check_owner(self.name, owner)
        if on_broker_error is not None:
            changes["on_broker_error"] = on_broker_error
        return dataclasses.replace(self, **changes)


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *, name: str | None = None, queue: str = "", priority: int | None = None,
    on_broker_error: str | None = None, retries: int = 0, retry_backoff: float = 0.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,), unique: bool | str = False,
    cache_for: float | None = None, time_limit: float | None = None,
    soft_time_limit: float | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...  # fmt: skip


def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "",
    priority: int | None = None,
    on_broker_error: str | None = None,
    retries: int = 0,
    retry_backoff: float = 0.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    unique: bool | str = False,
    cache_for: float | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Turn a module-level function taking a model instance first into a ``Task``.

    Usable bare (``@task``) or with options (``@task(queue="reports")``). The
    task's name is the function's dotted path unless ``name`` is given.

    Args:
        retries: attempts after the first when the body raises one of ``retry_on``
            (never for ``TaskFailed``); each waits ``retry_backoff * 2**(n-1)`` seconds.
        unique: at most one unfinished record per object (``"args"``: per object
            and arguments); a second call gets the unfinished record back.
        cache_for: ``.delayed()`` returns a successful record of the same call
            finished less than this many seconds ago instead of running again.
        time_limit, soft_time_limit: Celery's, per run; a run past its soft limit
            is FAILED with a ``TimeLimitExceeded`` error.
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        if isinstance(fn, Task):
            raise InvalidTask(f"@task applied twice to {fn.name}")
        if not callable(fn) or not hasattr(fn, "__qualname__"):
            raise InvalidTask(f"@task needs a function, not {fn!r}")
        made = Task(
            func=fn,
            name=f"{fn.__module__}.{fn.__qualname__}" if name is None else name,
            queue=queue,
            priority=priority,
            on_broker_error=on_broker_error,
            retries=retries,
            retry_backoff=retry_backoff,
            retry_on=retry_on,
            unique=unique,
            cache_for=cache_for,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )
        registry.register(made)
        return made

    return decorate(func) if func is not None else decorate
