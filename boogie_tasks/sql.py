"""The statements that pay to be written by hand, each whole and named.

Everything else on a record's path goes through the ORM. These are here
because Django's ORM has no ``UPDATE ... RETURNING``: a worker's claim moves
the record to RUNNING and reads it back in one round trip instead of two.
They run where the database has ``UPDATE ... RETURNING`` (PostgreSQL; SQLite
3.35+; see ``can_return``); ``transitions.claim`` falls back to the ORM
elsewhere.

Each statement finds its row by primary key alone. Its other conditions are
wrapped in ``CASE``, which no index matches: left bare, PostgreSQL may pick
the index on ``status`` when its statistics say few records are READY, and
then read every waiting record to find this one (``querysets.fenced`` does
the same for the ORM's fenced writes). Values go out as the model's fields
send them and come back through the converters Django itself applies to
what a query reads.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, connections, models, router

from boogie_tasks.conf import settings
from boogie_tasks.exceptions import MigrationsNotApplied
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus

__all__ = [
    "CLAIM_READY", "CLAIM_READY_WITH_OBJECT", "CLAIM_WAITING", "FINISH", "INSERT", "UNFLUSHED",
    "can_claim_with_object", "can_return", "claim", "claim_with_object", "configured", "execute",
    "insert", "unflushed",
]  # fmt: skip

# A new record, every column as the instance holds it (``.delayed()``, ``.call()``,
# ``.paused()``, ``.schedule()``: one each). Many at once go through bulk_create().
INSERT = """
INSERT INTO boogie_tasks_taskrecord (
    id, task_name, status, content_type_id, object_id, args, kwargs, result, error,
    traceback, progress_current, progress_total, progress_message, created_at, run_at,
    queued_at, started_at, finished_at, heartbeat_at, attempts, max_attempts, history,
    worker, owner_id, queue, priority, options, cancel_requested, args_hash, unique_key
) VALUES (
    %(id)s, %(task_name)s, %(status)s, %(content_type_id)s, %(object_id)s, %(args)s,
    %(kwargs)s, %(result)s, %(error)s, %(traceback)s, %(progress_current)s,
    %(progress_total)s, %(progress_message)s, %(created_at)s, %(run_at)s, %(queued_at)s,
    %(started_at)s, %(finished_at)s, %(heartbeat_at)s, %(attempts)s, %(max_attempts)s,
    %(history)s, %(worker)s, %(owner_id)s, %(queue)s, %(priority)s, %(options)s,
    %(cancel_requested)s, %(args_hash)s, %(unique_key)s
)
""".strip()

# A worker's claim: a READY record that is due starts its next attempt, unless
# its attempts are used up (a task that kills its own process cannot loop).
CLAIM_READY = """
UPDATE boogie_tasks_taskrecord
SET status = 'RUNNING',
    attempts = attempts + 1,
    started_at = %(now)s,
    heartbeat_at = %(now)s,
    worker = %(worker)s,
    error = '',
    traceback = '',
    cancel_requested = false
WHERE id = %(id)s
  AND CASE WHEN status = 'READY'
             AND attempts < max_attempts
             AND (run_at IS NULL OR run_at <= %(now)s)
      THEN 1 ELSE 0 END = 1
RETURNING *
""".strip()

# ``record.run()`` and ``run_pending()``: a PAUSED, SCHEDULED or READY record
# starts here and now, whenever it was due.
CLAIM_WAITING = """
UPDATE boogie_tasks_taskrecord
SET status = 'RUNNING',
    attempts = attempts + 1,
    started_at = %(now)s,
    heartbeat_at = %(now)s,
    worker = %(worker)s,
    error = '',
    traceback = '',
    cancel_requested = false
WHERE id = %(id)s
  AND CASE WHEN status IN ('PAUSED', 'SCHEDULED', 'READY')
             AND attempts < max_attempts
      THEN 1 ELSE 0 END = 1
RETURNING *
""".strip()

# The end of an attempt: its outcome, written only while the attempt is still
# the record's current one. A NULL error or run_at keeps the record's own (the
# reason a cancel wrote; the time a retry is not due to change).
FINISH = """
UPDATE boogie_tasks_taskrecord
SET status = %(status)s,
    result = %(result)s,
    error = COALESCE(%(error)s, error),
    traceback = %(traceback)s,
    progress_current = %(progress_current)s,
    progress_total = %(progress_total)s,
    progress_message = %(progress_message)s,
    run_at = COALESCE(%(run_at)s, run_at),
    finished_at = %(finished_at)s,
    history = %(history)s
WHERE id = %(id)s
  AND CASE WHEN status = 'RUNNING' AND attempts = %(attempts)s THEN 1 ELSE 0 END = 1
""".strip()

# The worker's claim, and in the same round trip the object of a task that says
# which model it takes (``Task.model``). PostgreSQL only: an UPDATE inside WITH.
# object_id is cast only for a record of that model (CASE decides first); a
# record of another model, or whose object is gone, comes back without it.
CLAIM_READY_WITH_OBJECT = """
WITH claimed AS (
{claim}
)
SELECT claimed.*, object.*
FROM claimed
LEFT JOIN {table} AS object
  ON object.{pk} = CASE WHEN claimed.content_type_id = %(content_type)s
                        THEN CAST(claimed.object_id AS {pk_type}) END
""".strip()

# BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT = False: a claim that is a transaction of
# its own (a worker's, on PostgreSQL) commits without waiting for the disk.
# set_config(..., true) holds for that one transaction: inside a caller's
# transaction it would outlive the claim, so there the claim is sent as it is.
UNFLUSHED = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS claim_settings"

# The statuses each statement moves from, for ``transitions.claim``'s ORM fallback.
CLAIMS_FROM = {
    CLAIM_READY: (TaskStatus.READY,),
    CLAIM_WAITING: (TaskStatus.PAUSED, TaskStatus.SCHEDULED, TaskStatus.READY),
}


def can_return(using: str) -> bool:
    """Whether the database runs ``UPDATE ... RETURNING`` (PostgreSQL; SQLite 3.35+).

    Not Django's ``can_return_columns_from_insert``: MariaDB returns from an
    INSERT but not from an UPDATE.
    """
    return _returns(connections[using].vendor)


@functools.cache
def _returns(vendor: str) -> bool:
    if vendor == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 35)
    return vendor == "postgresql"


def execute(statement: str, using: str, values: dict[str, Any]) -> int:
    """Run a statement that writes, each value sent as its field sends it; return rows changed."""
    connection = connections[using]
    fields = _fields()
    params = {
        name: value if value is None or name not in fields
        else fields[name].get_db_prep_save(value, connection)
        for name, value in values.items()
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


@functools.cache
def _fields() -> dict[str, models.Field[Any, Any]]:
    return {field.attname: field for field in TaskRecord._meta.concrete_fields}


def insert(record: TaskRecord, using: str) -> None:
    """INSERT a new record with every column, as ``save()`` would, without its signals."""
    values = {field.attname: field.pre_save(record, True) for field in _fields().values()}
    try:
        execute(INSERT, using, values)
    except DatabaseError as exc:
        if TaskRecord._meta.db_table in str(exc) and _missing_table(str(exc)):
            raise MigrationsNotApplied(
                f"{record.task_name}: the table {TaskRecord._meta.db_table} does not exist in "
                f"database {using!r}: run `python manage.py migrate`"
            ) from exc
        raise
    record._state.adding, record._state.db = False, using


def _missing_table(message: str) -> bool:
    return "does not exist" in message or "no such table" in message or "doesn't exist" in message


def claim(statement: str, using: str, pk: Any, now: Any, worker: str) -> TaskRecord | None:
    """Run one of the claim statements; return the record as it left it, or None."""
    with connections[using].cursor() as cursor:
        cursor.execute(statement, _claim_params(using, pk, now, worker))
        row = cursor.fetchone()
        columns = [column[0] for column in cursor.description or ()]
    return None if row is None else _instance(TaskRecord, using, columns, row)


def configured(statement: str, using: str) -> str:
    """The claim ``statement`` as ``BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT`` says."""
    connection = connections[using]
    if (
        settings.CLAIM_SYNCHRONOUS_COMMIT
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
    ):
        return statement
    return unflushed(statement)


@functools.lru_cache(maxsize=8)
def unflushed(statement: str) -> str:
    """The claim ``statement``, committed without waiting for the disk (see ``UNFLUSHED``)."""
    return statement.replace("\nWHERE id", f"\n{UNFLUSHED}\nWHERE id", 1)


def claim_with_object(
    statement: str, using: str, pk: Any, now: Any, worker: str,
    model: type[models.Model], content_type: int,
) -> tuple[TaskRecord | None, models.Model | None]:  # fmt: skip
    """The claim ``statement`` in ``CLAIM_READY_WITH_OBJECT``: the record, and its object."""
    params = {**_claim_params(using, pk, now, worker), "content_type": content_type}
    with connections[using].cursor() as cursor:
        cursor.execute(_with_object(statement, using, model), params)
        row = cursor.fetchone()
        columns = [column[0] for column in cursor.description or ()]
    if row is None:
        return None, None
    width = len(TaskRecord._meta.concrete_fields)
    record = _instance(TaskRecord, using, columns[:width], row[:width])
    found = row[width + columns[width:].index(str(_pk(model).column))] is not None
    return record, _instance(model, using, columns[width:], row[width:]) if found else None


def can_claim_with_object(using: str, model: type[models.Model]) -> bool:
    """Whether ``claim_with_object`` can read ``model``'s objects with records of ``using``.

    PostgreSQL, the model read from the same database, in one table of its
    own, through Django's own base manager, with a primary key of a type
    ``object_id`` casts back to (integers, UUIDs, text).
    """
    meta = model._meta
    return (
        connections[using].vendor == "postgresql"
        and router.db_for_read(model) == using
        and not (meta.parents or meta.proxy or meta.base_manager_name)
        and not getattr(meta, "is_composite_pk", False)
        and _pk(model).get_internal_type() in _CASTABLE
    )


_CASTABLE = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "UUIDField", "CharField", "TextField", "SlugField",
    }
)  # fmt: skip


def _pk(model: type[models.Model]) -> models.Field[Any, Any]:
    pk = model._meta.pk
    assert pk is not None  # every concrete model has one
    return pk


def _claim_params(using: str, pk: Any, now: Any, worker: str) -> dict[str, Any]:
    connection = connections[using]
    return {
        "id": _fields()["id"].get_db_prep_value(pk, connection),
        "now": _fields()["started_at"].get_db_prep_value(now, connection),
        "worker": worker,
    }


@functools.lru_cache(maxsize=64)
def _with_object(statement: str, using: str, model: type[models.Model]) -> str:
    """``CLAIM_READY_WITH_OBJECT`` around the claim ``statement``, for ``model``'s objects."""
    connection = connections[using]
    quote = connection.ops.quote_name
    return CLAIM_READY_WITH_OBJECT.format(
        claim=statement.replace("RETURNING *", "RETURNING boogie_tasks_taskrecord.*"),
        table=quote(model._meta.db_table),
        pk=quote(str(_pk(model).column)),
        pk_type=_pk(model).cast_db_type(connection),
    )


def _instance(model: type[models.Model], using: str, columns: list[str], row: Sequence[Any]) -> Any:
    """The instance the ORM would make of a row read by ``columns``, in any order."""
    connection = connections[using]
    by_column = dict(zip(columns, row, strict=True))
    values = []
    for column, converters in _converters(using, connection.vendor, model):
        value = by_column[column]
        for converter, expression in converters:
            value = converter(value, expression, connection)
        values.append(value)
    return model.from_db(using, [field.attname for field in model._meta.concrete_fields], values)


@functools.lru_cache(maxsize=64)
def _converters(
    using: str, vendor: str, model: type[models.Model]
) -> list[tuple[str, list[tuple[Any, Any]]]]:
    """Each concrete field's column, and what Django applies to a value read from it."""
    connection = connections[using]
    result = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        result.append((str(field.column), [(converter, column) for converter in found]))
    return result
