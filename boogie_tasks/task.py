"""The ``@task`` decorator and the ``Task`` object it returns."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from boogie_tasks import registry
from boogie_tasks.exceptions import InvalidState, InvalidTask, InvalidTaskArguments
from boogie_tasks.jsonutil import to_json
from boogie_tasks.status import TaskStatus
from boogie_tasks.validation import check_object, check_options, check_owner, label

if TYPE_CHECKING:
    from boogie_tasks.models import TaskRecord
    from boogie_tasks.querysets import TaskRecordQuerySet

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Task", "task"]

# The using() options a recurring entry keeps (besides the owner).
_KEPT_OPTIONS = ("queue", "priority", "on_broker_error")


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
        functools.update_wrapper(_Wrapped(self), self.func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the plain function; nothing is recorded."""
        return self.func(*args, **kwargs)

    # Starting runs

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run now, in this process, and record it; return the stored JSON result.

        On failure the record is FAILED and the exception is raised.
        """
        from boogie_tasks.runner import execute, worker_id

        now = timezone.now()
        record = self._create(
            args, kwargs, TaskStatus.RUNNING,
            attempts=1, started_at=now, heartbeat_at=now, worker=worker_id(),
        )  # fmt: skip
        return execute(record, self, args[0], reraise=True)  # type: ignore[arg-type]

    def delayed(self, *args: P.args, **kwargs: P.kwargs) -> TaskRecord:
        """Record the run as READY and send it to a worker once the transaction commits.

        With ``cache_for``, a recent successful record of the same call is returned
        instead; with ``unique``, the unfinished record of the same key.
        """
        fields = self._prepare(args, kwargs)
        if self.cache_for:
            cached = self._cached(fields)
            if cached is not None:
                return cached
        return self._queue(fields)

    def schedule(self, when: Any, /, *args: P.args, **kwargs: P.kwargs) -> TaskRecord:
        """Record the run as SCHEDULED; the dispatcher starts it at ``when``.

        ``when``: seconds from now (int or float), a ``timedelta``, or a
        ``datetime`` (naive means the current time zone).
        """
        from boogie_tasks.scheduling import resolve_when

        run_at = resolve_when(self.name, when)
        return self._insert(self._prepare(args, kwargs), TaskStatus.SCHEDULED, run_at=run_at)[0]

    def every(self, schedule: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run for this object on a schedule: a django-celery-beat ``PeriodicTask``.

        ``schedule``: a cron string, a ``timedelta`` or a Celery ``crontab``. Each
        firing creates a new record. The same object, arguments and schedule give
        the same ``PeriodicTask`` back; delete or disable it to stop.
        """
        from django_celery_beat.models import PeriodicTask

        from boogie_tasks.scheduling import SPAWN_NAME, beat_schedule

        fields = self._prepare(args, kwargs)
        kind, row = beat_schedule(self.name, schedule)
        digest = _digest(f"{fields['args_hash']}|{kind}|{row.pk}")[:16]
        prefix = _periodic_prefix(self.name, fields["content_type_id"], fields["object_id"])
        spawn = {
            "task_name": self.name,
            "content_type_id": fields["content_type_id"],
            "object_id": fields["object_id"],
            "args": fields["args"],
            "kwargs": fields["kwargs"],
        }
        if overrides := self._overrides():
            spawn["options"] = overrides
        entry, created = PeriodicTask.objects.get_or_create(
            name=f"{prefix}{digest}",
            defaults={"task": SPAWN_NAME, kind: row, "kwargs": json.dumps(spawn)},
        )
        if not created and json.loads(entry.kwargs or "{}") != spawn:
            # The same recurring run asked for again with other using() options: the last wins.
            entry.kwargs = json.dumps(spawn)
            entry.save(update_fields=["kwargs"])
        return entry

    def periodic(self, obj: models.Model | None = None) -> models.QuerySet[Any]:
        """This task's recurring runs (``PeriodicTask`` rows), for one object or all."""
        from django.contrib.contenttypes.models import ContentType
        from django_celery_beat.models import PeriodicTask

        from boogie_tasks.scheduling import SPAWN_NAME

        entries = PeriodicTask.objects.filter(task=SPAWN_NAME)
        if obj is None:
            return entries.filter(name__startswith=f"{self.name} ")
        obj = check_object(self.name, obj)
        content_type = ContentType.objects.get_for_model(obj)
        return entries.filter(
            name__startswith=_periodic_prefix(self.name, content_type.pk, str(obj.pk))
        )

    def spawn(
        self,
        content_type_id: int,
        object_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> TaskRecord:
        """Make and send one run of a recurring entry (``boogie_tasks.spawn`` calls it).

        ``options`` are those of the ``using()`` copy that made the entry.
        """
        task = self._with_overrides(options or {})
        return task._queue(task._fields(content_type_id, object_id, args, kwargs))

    def paused(self, *args: P.args, **kwargs: P.kwargs) -> TaskRecord:
        """Record the run as PAUSED; ``record.run()`` or ``record.enqueue()`` starts it."""
        return self._insert(self._prepare(args, kwargs), TaskStatus.PAUSED)[0]

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

    def results(self, obj: models.Model | None = None) -> models.QuerySet[Any]:
        """Results of the successful runs, newest first: a lazy, sliceable sequence."""
        return self.tasks(obj).successful().values_list("result", flat=True)

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

    # Internals

    def _overrides(self) -> dict[str, Any]:
        """What a ``using()`` copy changed, as JSON, to keep in a recurring entry."""
        base = registry.get(self.name)
        overrides: dict[str, Any] = {
            name: getattr(self, name)
            for name in _KEPT_OPTIONS
            if getattr(self, name) != getattr(base, name)
        }
        if self.owner is not None and self.owner != base.owner:
            overrides["owner_id"] = self.owner.pk
        return overrides

    def _with_overrides(self, overrides: dict[str, Any]) -> Task[P, R]:
        """This task with the options a recurring entry kept; a deleted owner is dropped."""
        changes = {k: v for k, v in overrides.items() if k in _KEPT_OPTIONS}
        if overrides.get("owner_id") is not None:
            from django.contrib.auth import get_user_model

            changes["owner"] = (
                get_user_model()._default_manager.filter(pk=overrides["owner_id"]).first()
            )
        return dataclasses.replace(self, **changes) if changes else self

    def _create(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], status: str, **fields: Any
    ) -> TaskRecord:
        """Check the arguments, then INSERT the record (never deduplicated)."""
        from boogie_tasks.models import TaskRecord

        prepared = self._prepare(args, kwargs)
        prepared.pop("unique_key")
        return _insert_record(TaskRecord(status=status, **prepared, **fields))

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check the arguments and return the record's fields; nothing is written.

        Raises:
            InvalidTaskArguments: naming the task and the argument.
        """
        from django.contrib.contenttypes.models import ContentType

        if not args:
            raise InvalidTaskArguments(
                f"{self.name}: the first argument must be a saved model instance; none given"
            )
        obj = check_object(self.name, args[0])
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidTaskArguments(f"{self.name}: {exc}") from None
        json_args = [
            to_json(value, task=self.name, what=label(bound, index))
            for index, value in enumerate(args[1:], start=1)
        ]
        json_kwargs = {
            key: to_json(value, task=self.name, what=f"argument {key!r}")
            for key, value in kwargs.items()
        }
        content_type = ContentType.objects.get_for_model(obj)
        return self._fields(content_type.pk, str(obj.pk), json_args, json_kwargs)

    def _fields(
        self,
        content_type_id: int,
        object_id: str,
        json_args: list[Any],
        json_kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """The record's fields for checked arguments (also used by recurring runs)."""
        args_hash = _digest(json.dumps([json_args, json_kwargs], sort_keys=True))
        unique_key = None
        if self.unique:
            parts = [self.name, str(content_type_id), object_id]
            if self.unique == "args":
                parts.append(args_hash)
            unique_key = _digest("\x1f".join(parts))
        celery = {
            name: value
            for name, value in (
                ("time_limit", self.time_limit),
                ("soft_time_limit", self.soft_time_limit),
            )
            if value is not None
        }
        options: dict[str, Any] = (
            {"on_broker_error": self.on_broker_error} if self.on_broker_error else {}
        )
        if celery:
            options["celery"] = celery
        return {
            "task_name": self.name,
            "content_type_id": content_type_id,
            "object_id": object_id,
            "args": json_args,
            "kwargs": json_kwargs,
            "args_hash": args_hash,
            "unique_key": unique_key,
            "owner": self.owner,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.retries + 1,
            "options": options,
        }

    def _insert(self, fields: dict[str, Any], status: str, **extra: Any) -> tuple[TaskRecord, bool]:
        """INSERT the record; for a unique task, return the unfinished one if it exists.

        The database decides (a partial unique constraint): the losing INSERT
        fails in its own savepoint and the winner is returned, with False.
        """
        from boogie_tasks.models import TaskRecord

        if not fields["unique_key"]:
            return _insert_record(TaskRecord(status=status, **fields, **extra)), True
        for _ in range(3):
            try:
                with transaction.atomic(using=router.db_for_write(TaskRecord)):
                    return _insert_record(TaskRecord(status=status, **fields, **extra)), True
            except IntegrityError:
                winner = (
                    TaskRecord.objects.unfinished().filter(unique_key=fields["unique_key"]).first()
                )
                if winner is not None:
                    return winner, False
                # The winner finished in between: try the INSERT again.
        raise InvalidState(f"{self.name}: could not insert a unique record; try again")

    def _queue(self, fields: dict[str, Any]) -> TaskRecord:
        """INSERT the record READY and publish it after commit (unless unique found one)."""
        from boogie_tasks.runner import publish_on_commit

        record, created = self._insert(fields, TaskStatus.READY, queued_at=timezone.now())
        if created:
            publish_on_commit(record)
        return record

    def _cached(self, fields: dict[str, Any]) -> TaskRecord | None:
        """The newest successful record of the same call within ``cache_for`` seconds."""
        from boogie_tasks.models import TaskRecord

        since = timezone.now() - datetime.timedelta(seconds=float(self.cache_for or 0))
        return (
            TaskRecord.objects.successful()
            .filter(
                task_name=self.name,
                content_type_id=fields["content_type_id"],
                object_id=fields["object_id"],
                args_hash=fields["args_hash"],
                finished_at__gte=since,
            )
            .order_by("-finished_at")
            .first()
        )


def _insert_record(record: TaskRecord) -> TaskRecord:
    from boogie_tasks.statements import insert

    return insert(record, router.db_for_write(type(record)))


def _periodic_prefix(name: str, content_type_id: int, object_id: str) -> str:
    # PeriodicTask.name is at most 200 characters: long names are cut, the digest decides.
    return f"{name} {content_type_id}:{object_id} "[:180]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Wrapped:
    """Lets ``functools.update_wrapper`` write into a frozen dataclass."""

    def __init__(self, target: Task[Any, Any]) -> None:
        object.__setattr__(self, "_target", target)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self._target, name, value)

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        return self._target.__dict__


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
