"""The statements on every run's path, built once and sent on a plain cursor.

Each run costs one INSERT in the caller, and in the worker a claim, the fetch
of the task's object and a finishing UPDATE. Through the ORM each of them is
compiled afresh, which costs more CPU than the database spends on it; here
the SQL text of each shape is built once per process, and the values are
prepared and read by the fields themselves, so the rows read and written are
exactly those the ORM would read and write.

Like ``QuerySet.update()`` and ``bulk_create()``, these send no ``pre_save``
or ``post_save`` signals; boogie_tasks' own signals say what happened.

The claim and the finish find their row by primary key alone: their other
conditions (status, attempts, due) are wrapped in ``CASE``, which no index
matches. Left bare, PostgreSQL may pick an index on ``status`` instead, when
its statistics say few records are READY or RUNNING, and then read every
waiting record to find one: O(backlog) per run (``_unindexed`` below).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models

from boogie_tasks.models import TaskRecord

__all__ = ["can_return", "claim_returning", "get_object", "insert", "update_fenced"]

_meta = TaskRecord._meta
Converter = Callable[[Any, Any, Any], Any]


def insert(record: TaskRecord, using: str) -> TaskRecord:
    """INSERT a new record with every concrete field, as ``save()`` would."""
    connection = connections[using]
    fields = _meta.concrete_fields
    params = [_prep_field(field, field.pre_save(record, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.alias, connection.vendor), params)
    record._state.adding = False
    record._state.db = using
    return record


def update_fenced(using: str, pk: Any, fence: dict[str, Any], values: dict[str, Any]) -> int:
    """``UPDATE ... SET values WHERE pk = pk AND fence``; return the rows changed.

    ``fence`` holds equality conditions (status, attempts): the write lands only
    while the row is still as this process last left it.
    """
    connection = connections[using]
    params = [_prep(name, value, connection) for name, value in values.items()]
    params.append(_prep("id", pk, connection))
    params.extend(_prep(name, value, connection) for name, value in fence.items())
    sql = _update_sql(connection.alias, connection.vendor, tuple(values), tuple(fence))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def claim_returning(
    using: str, pk: Any, statuses: Sequence[str], due_before: Any, values: dict[str, Any]
) -> TaskRecord | None:
    """Start an attempt in one statement and return the row it left, or None.

    ``UPDATE ... SET attempts = attempts + 1, values WHERE pk = pk AND status IN
    statuses AND attempts < max_attempts [AND due] RETURNING *``. The database
    must support ``UPDATE ... RETURNING`` (see ``can_return``).
    """
    connection = connections[using]
    params = [_prep(name, value, connection) for name, value in values.items()]
    params.append(_prep("id", pk, connection))
    params.extend(statuses)
    if due_before is not None:
        params.append(_prep("run_at", due_before, connection))
    sql = _claim_sql(
        connection.alias, connection.vendor, tuple(values), len(statuses), due_before is not None
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _from_row(TaskRecord, row, connection)


def get_object(model: type[models.Model], pk: Any, using: str) -> models.Model:
    """``model._base_manager.db_manager(using).get(pk=pk)``, with SQL built once per model.

    For a model whose row lives in one table and whose base manager is Django's
    own; any other (multi-table inheritance, a proxy, a ``base_manager_name``, a
    composite primary key) goes through the ORM. Raises ``model.DoesNotExist``,
    and what the primary key field raises for a value it cannot take.
    """
    meta = model._meta
    if not _plain(model):
        return model._base_manager.db_manager(using).get(pk=pk)
    connection = connections[using]
    value = meta.pk.get_db_prep_value(pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(_select_sql(connection.alias, connection.vendor, model), [value])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{meta.object_name} matching query does not exist.")
    return _from_row(model, row, connection)


def can_return(using: str) -> bool:
    """Whether the database runs ``UPDATE ... RETURNING`` (PostgreSQL; SQLite 3.35+).

    Not Django's ``can_return_columns_from_insert``: MariaDB returns from an
    INSERT but not from an UPDATE.
    """
    return _returns(connections[using].vendor)


@functools.cache
def _returns(vendor: str) -> bool:
    if vendor == "sqlite":
        import sqlite3

        return sqlite3.sqlite_version_info >= (3, 35)
    return vendor == "postgresql"


# Values in, values out


def _prep(name: str, value: Any, connection: Any) -> Any:
    return _prep_field(_meta.get_field(name), value, connection)


def _prep_field(field: Any, value: Any, connection: Any) -> Any:
    # A str, int or bool for a plain text, integer or boolean column goes to the
    # database as it is: the field would return it unchanged.
    if type(field) in _PLAIN_FIELDS and (value is None or type(value) in _PLAIN_VALUES):
        return value
    return field.get_db_prep_save(value, connection)


_PLAIN_VALUES = frozenset({str, int, bool})
_PLAIN_FIELDS = frozenset(
    {
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.BigIntegerField,
        models.PositiveIntegerField,
        models.BooleanField,
    }
)


def _from_row(model: type[models.Model], row: Sequence[Any], connection: Any) -> Any:
    """The instance the ORM would make of a row of every concrete field, in order."""
    values = list(row)
    for index, converters in _converters(connection.alias, connection.vendor, model):
        for converter, expression in converters:
            values[index] = converter(values[index], expression, connection)
    return model.from_db(connection.alias, _attnames(model), values)


@functools.cache
def _plain(model: type[models.Model]) -> bool:
    meta = model._meta
    return not (
        meta.parents
        or meta.proxy
        or meta.base_manager_name
        or getattr(meta, "is_composite_pk", False)  # Django 5.2+
    )


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.lru_cache(maxsize=256)
def _converters(
    alias: str, vendor: str, model: type[models.Model]
) -> list[tuple[int, list[tuple[Converter, Any]]]]:
    """What the ORM applies to a value read, the backend's then the field's, by column.

    Only the columns that have converters are listed.
    """
    connection = connections[alias]
    result = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            result.append((index, [(converter, column) for converter in found]))
    return result


# SQL text, once per shape (the cache key holds the vendor: an alias may be re-pointed in tests)


def _quote(alias: str) -> Callable[[str], str]:
    return connections[alias].ops.quote_name


def _column(name: str) -> str:
    return _meta.get_field(name).column


@functools.lru_cache(maxsize=8)
def _insert_sql(alias: str, vendor: str) -> str:
    quote = _quote(alias)
    columns = ", ".join(quote(field.column) for field in _meta.concrete_fields)
    marks = ", ".join(["%s"] * len(_meta.concrete_fields))
    return f"INSERT INTO {quote(_meta.db_table)} ({columns}) VALUES ({marks})"


def _unindexed(conditions: Sequence[str]) -> str:
    """``conditions`` ANDed in a form no index matches, for a row found by primary key.

    The result is the same as the bare conditions (none of them is ever NULL).
    """
    return f"CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END = 1"


@functools.lru_cache(maxsize=256)
def _select_sql(alias: str, vendor: str, model: type[models.Model]) -> str:
    quote = _quote(alias)
    meta = model._meta
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    return f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s"


@functools.lru_cache(maxsize=64)
def _update_sql(alias: str, vendor: str, names: tuple[str, ...], fenced: tuple[str, ...]) -> str:
    quote = _quote(alias)
    assignments = ", ".join(f"{quote(_column(name))} = %s" for name in names)
    where = f"{quote(_column('id'))} = %s"
    if fenced:
        where += " AND " + _unindexed([f"{quote(_column(name))} = %s" for name in fenced])
    return f"UPDATE {quote(_meta.db_table)} SET {assignments} WHERE {where}"


@functools.lru_cache(maxsize=16)
def _claim_sql(
    alias: str, vendor: str, names: tuple[str, ...], statuses: int, due_only: bool
) -> str:
    quote = _quote(alias)
    attempts = quote(_column("attempts"))
    assignments = [f"{attempts} = {attempts} + 1"]
    assignments += [f"{quote(_column(name))} = %s" for name in names]
    conditions = [
        f"{quote(_column('status'))} IN ({', '.join(['%s'] * statuses)})",
        # The cap: a task that kills its own process cannot be started for ever.
        f"{attempts} < {quote(_column('max_attempts'))}",
    ]
    if due_only:
        run_at = quote(_column("run_at"))
        conditions.append(f"({run_at} IS NULL OR {run_at} <= %s)")
    returning = ", ".join(quote(field.column) for field in _meta.concrete_fields)
    return (
        f"UPDATE {quote(_meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {quote(_column('id'))} = %s AND {_unindexed(conditions)} RETURNING {returning}"
    )
