"""The statements on every run's path, built once and sent on a plain cursor.

Each run costs one INSERT in the caller, and in the worker a claim, the fetch
of the task's object and a finishing UPDATE. Through the ORM each of them is
compiled afresh, which costs more CPU than the database spends on it; here
the SQL text of each shape is built once per process, and the values are
prepared and read by the fields themselves, so the rows read and written are
exactly those the ORM would read and write.

Empty values (NULL, '', 0, false, [] and {}) are written into the SQL text,
whose shape is cached, and only the others are sent as parameters: most of a
record's columns are empty, and a parameter costs more to prepare and send
than its place in a cached statement.

Like ``QuerySet.update()`` and ``bulk_create()``, these send no ``pre_save``
or ``post_save`` signals; boogie_tasks' own signals say what happened.

On PostgreSQL, outside a transaction (as in a worker), each of them runs as a
prepared statement from its second use on a connection: parsed and planned
once per connection, which halves what the server spends on a run (see
``_execute``). Inside a transaction, the INSERTs of many ``.delayed()`` calls
are prepared too, from the third, once the session itself says what it holds
(see ``InTransaction``).

The claim and the finish find their row by primary key alone: their other
conditions (status, attempts, due) are wrapped in ``CASE``, which no index
matches. Left bare, PostgreSQL may pick an index on ``status`` instead, when
its statistics say few records are READY or RUNNING, and then read every
waiting record to find one: O(backlog) per run (``_unindexed`` below).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import DatabaseError, Error, connections, models, router

from boogie_tasks.conf import settings
from boogie_tasks.models import TaskRecord

logger = logging.getLogger("boogie_tasks")

__all__ = [
    "InTransaction",
    "can_claim_with_object",
    "can_return",
    "claim_returning",
    "claim_with_object",
    "get_object",
    "insert",
    "update_fenced",
]

_meta = TaskRecord._meta
Converter = Callable[[Any, Any, Any], Any]


def insert(
    record: TaskRecord, using: str, in_transaction: InTransaction | None = None
) -> TaskRecord:
    """INSERT a new record with every concrete field, as ``save()`` would.

    ``in_transaction``: what the current transaction knows of the statements
    prepared on its session, for an INSERT inside one (see ``InTransaction``).
    """
    connection = connections[using]
    values = [read(record) for read in _insert_reads()]
    literals, params = _split(_kinds(None), values, connection)
    with connection.cursor() as cursor:
        sql = _insert_sql(connection.alias, connection.vendor, literals)
        _execute(connection, cursor, "insert", sql, params, in_transaction)
    record._state.adding = False
    record._state.db = using
    return record


def update_fenced(using: str, pk: Any, fence: dict[str, Any], values: dict[str, Any]) -> int:
    """``UPDATE ... SET values WHERE pk = pk AND fence``; return the rows changed.

    ``fence`` holds equality conditions (status, attempts): the write lands only
    while the row is still as this process last left it.
    """
    connection = connections[using]
    names = tuple(values)
    literals, params = _split(_kinds(names), values.values(), connection)
    params.append(_prep("id", pk, connection))
    params.extend(_prep(name, value, connection) for name, value in fence.items())
    sql = _update_sql(connection.alias, connection.vendor, names, literals, tuple(fence))
    with connection.cursor() as cursor:
        _execute(connection, cursor, "update", sql, params)
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
    shape, params = _claim_parts(connection, pk, statuses, due_before, values)
    sql = _claim_sql(*shape)
    with connection.cursor() as cursor:
        _execute(connection, cursor, "claim", sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _from_row(TaskRecord, row, connection)


def claim_with_object(
    using: str,
    pk: Any,
    statuses: Sequence[str],
    due_before: Any,
    values: dict[str, Any],
    content_type_id: int,
    model: type[models.Model],
) -> tuple[TaskRecord | None, models.Model | None]:
    """``claim_returning`` and, in the same statement, the claimed record's object.

    The object is read only if the record's content type is ``content_type_id``
    (the model the caller expects, ``model``): ``WITH claimed AS (UPDATE ...
    RETURNING ...) SELECT claimed.*, object.* FROM claimed LEFT JOIN <model's
    table> ON <pk> = CASE WHEN <content type matches> THEN CAST(object_id AS
    <pk type>) END``. Returns (record, object); (None, None) when the record
    was not claimed; (record, None) when it is of another model, or its object
    is gone, and the caller fetches it as usual. Only where
    ``can_claim_with_object(using, model)``.
    """
    connection = connections[using]
    shape, params = _claim_parts(connection, pk, statuses, due_before, values)
    params.append(content_type_id)
    sql = _claim_object_sql(shape, model)
    with connection.cursor() as cursor:
        _execute(connection, cursor, "claim", sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, None
    width = len(_meta.concrete_fields)
    record = _from_row(TaskRecord, row[:width], connection)
    if row[width + _pk_index(model)] is None:
        return record, None
    return record, _from_row(model, row[width:], connection)


def _claim_parts(
    connection: Any, pk: Any, statuses: Sequence[str], due_before: Any, values: dict[str, Any]
) -> tuple[tuple[Any, ...], list[Any]]:
    """The claim's shape (the arguments of ``_claim_sql``) and its parameters."""
    literals, params = _split(_kinds(tuple(values)), values.values(), connection)
    params.append(_prep("id", pk, connection))
    params.extend(statuses)
    if due_before is not None:
        params.append(_prep("run_at", due_before, connection))
    shape = (
        connection.alias, connection.vendor, tuple(values), literals, len(statuses),
        due_before is not None, not connection.in_atomic_block,
    )  # fmt: skip
    return shape, params


def can_claim_with_object(using: str, model: type[models.Model]) -> bool:
    """Whether ``claim_with_object`` can read objects of ``model`` for records in ``using``.

    PostgreSQL (an ``UPDATE`` in ``WITH``), the model read from the same
    database, in one table, with a primary key of a type that ``object_id``
    casts to (integers, UUIDs, text).
    """
    return (
        connections[using].vendor == "postgresql"
        and router.db_for_read(model) == using
        and _plain(model)
        and model._meta.pk.get_internal_type() in _CASTABLE_PKS
    )


# The primary key types whose values object_id (str(pk)) casts back to.
_CASTABLE_PKS = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "UUIDField", "CharField", "TextField", "SlugField",
    }
)  # fmt: skip


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
        sql = _select_sql(connection.alias, connection.vendor, model)
        _execute(connection, cursor, "select", sql, [value])
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


# Prepared statements (PostgreSQL)
#
# A worker's claim costs PostgreSQL more to parse and plan than to run, and
# Django never prepares (``prepare_threshold`` is None: psycopg's own names
# would be wrong behind a pooler in transaction mode). These statements are
# prepared under a name made of their text, ``PREPARE boogie_<kind>_<hash>``,
# so a name means the same statement on every server session, whoever
# prepared it there. Outside a transaction a statement that fails changes
# nothing, and is simply sent again as it is. Inside one, a failure would
# break the caller's transaction: there only what the session is seen to hold,
# in that same transaction, is executed (``InTransaction``).

# SQLSTATEs of a prepared statement the session does not hold as we thought:
# not there (another session behind a pooler, DISCARD ALL), or there already.
_MISSING, _DUPLICATE = "26000", "42P05"
# Errors of an EXECUTE that a statement prepared before a migration changed its
# table can raise where the statement sent as it is would not: its result or
# parameter types are those of the old columns ("cached plan must not change
# result type", a type mismatch, an int4 parameter for what is now a bigint).
_STALE_CLASSES = ("42", "0A")
_STALE = ("22003",)
# How many times per database a session is found not holding what this process
# prepared on it, before the process stops preparing there: a pooler in
# transaction mode hands each statement another session.
MAX_MISSES = 3
# The most statements prepared (or about to be) on one session; any others are
# sent as they are. A run has few shapes of statement; this bounds what an odd
# mix of empty and set values could leave on the server.
MAX_STATEMENTS = 128

# Per session (psycopg connection): the name of each statement used on it, and
# whether it is prepared there.
_sessions: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()
_misses: dict[str, int] = {}
# Statements PostgreSQL refused to prepare (though it runs them): never prepared.
_unpreparable: set[str] = set()
# The text each name stands for, as prepared (``boogie_tasks.testing.executed_sql``).
texts: dict[str, str] = {}


def _execute(
    connection: Any,
    cursor: Any,
    kind: str,
    sql: str,
    params: Sequence[Any],
    in_transaction: InTransaction | None = None,
) -> None:
    """``cursor.execute(sql, params)``, as a prepared statement where it pays and is safe.

    On PostgreSQL with psycopg 3, in autocommit, a statement's second use on a
    session prepares it, and every use from then on is ``EXECUTE
    name(params)``; the first is sent as it is, so a connection that lives for
    one task (Celery's default) never pays a ``PREPARE``. Where the prepared
    statement fails as the statement itself would not (the session does not
    hold it, or holds it planned for columns changed since), the statement is
    sent as it is; after ``MAX_MISSES`` sessions found without their statements
    on a database, this process stops preparing there. In a transaction, see
    ``_execute_in_transaction``.
    """
    autocommit = connection.get_autocommit()
    # In a transaction, only a statement with an InTransaction may be prepared.
    session = _session(connection) if autocommit or in_transaction is not None else None
    if session is None or not _binds_on_client(type(getattr(cursor, "cursor", cursor))):
        cursor.execute(sql, params)
        return
    if in_transaction is not None and not autocommit:  # (no session in one without it)
        _execute_in_transaction(cursor, session, kind, sql, params, in_transaction)
        return
    name, prepare, execute = _prepared(kind, sql)
    prepared = session.get(name)
    if prepared is None or name in _unpreparable:
        if prepared is None and len(session) < MAX_STATEMENTS:
            session[name] = False
        cursor.execute(sql, params)
        return
    if not prepared and not _prepare(connection, cursor, session, name, prepare):
        cursor.execute(sql, params)
        return
    try:
        cursor.execute(execute, params)
    except DatabaseError as exc:
        state = _sqlstate(exc)
        if state == _MISSING:
            session.clear()  # the session lost them all (DISCARD ALL), or is another one
            session[name] = False
            _missed(connection.alias, name, state)
        elif state in _STALE or state[:2] in _STALE_CLASSES:
            # Prepared before a migration changed the table: prepared again next time.
            # A real error of the statement is raised by the statement itself, below.
            session[name] = False
            _deallocate(cursor, name)
        else:
            raise
        cursor.execute(sql, params)


class InTransaction:
    """What one transaction has seen of the statements prepared on its session.

    Its owner keeps it for one transaction, and one savepoint, only (the
    ``on_commit`` batch of ``.delayed()``): behind a pooler in transaction
    mode, each transaction may be served by another server session, so what
    a session held is never taken on trust from one transaction to the next.
    """

    __slots__ = ("held", "uses")

    def __init__(self) -> None:
        self.uses: dict[str, int] = {}  # name -> statements sent as they are
        self.held: set[str] = set()  # names the session holds, seen in this transaction


# Uses of a statement in one transaction (after the one before its
# ``InTransaction``) sent as they are before it is prepared: a view that
# queues a run or two pays nothing more.
TRANSACTION_USES = 1
# Whether the session holds a prepared statement, asked once per transaction.
HELD_SQL = "SELECT EXISTS (SELECT FROM pg_prepared_statements WHERE name = %s)"


def _execute_in_transaction(
    cursor: Any,
    session: dict[str, bool],
    kind: str,
    sql: str,
    params: Sequence[Any],
    in_transaction: InTransaction,
) -> None:
    """``_execute`` in the caller's transaction: prepared once the session says it holds it.

    A statement that fails here breaks the caller's transaction, so nothing is
    executed on trust. Without an ``InTransaction`` (a lone INSERT, a claim in
    ``atomic()``) ``_execute`` sends the statement as it is. With one, after
    ``TRANSACTION_USES`` uses the session is asked whether it holds the
    statement (one query per statement and transaction), which is prepared if
    not; every later use in the transaction executes it. The INSERT, the only
    statement sent so, has the types of its columns for its parameters:
    PostgreSQL prepares it wherever it runs it.
    """
    name, prepare, execute = _prepared(kind, sql)
    if name not in in_transaction.held:
        uses = in_transaction.uses.get(name, 0)
        if (
            uses < TRANSACTION_USES
            or name in _unpreparable
            or (name not in session and len(session) >= MAX_STATEMENTS)
        ):
            in_transaction.uses[name] = uses + 1
            cursor.execute(sql, params)
            return
        cursor.execute(HELD_SQL, [name])
        if not cursor.fetchone()[0]:
            cursor.execute(prepare)
        session[name] = True
        in_transaction.held.add(name)
    cursor.execute(execute, params)


def _prepare(
    connection: Any, cursor: Any, session: dict[str, bool], name: str, prepare: str
) -> bool:
    """``PREPARE`` the statement on the session; False when it is to be sent as it is."""
    try:
        cursor.execute(prepare)
    except DatabaseError as exc:
        state = _sqlstate(exc)
        if state == _DUPLICATE:
            # Prepared by another client of the pooler: the same name is the same text.
            session[name] = True
        elif state[:2] == "42":
            # One PostgreSQL runs but cannot prepare: never tried again here.
            _unpreparable.add(name)
            logger.warning(
                "statement not prepared name=%s (SQLSTATE %s, %s): sent as it is",
                name, state, exc,
            )  # fmt: skip
        # Any other error (a timeout, a lock, a lost connection) is the
        # statement's to meet too: it is sent as it is, and prepared next time.
        return False
    session[name] = True
    return True


def _sqlstate(exc: DatabaseError) -> str:
    return getattr(exc.__cause__, "sqlstate", None) or ""


def _session(connection: Any) -> dict[str, bool] | None:
    """The statements used on the connection's session, or None where nothing is prepared."""
    if (
        connection.vendor != "postgresql"
        or not settings.PREPARED_STATEMENTS
        or _misses.get(connection.alias, 0) >= MAX_MISSES
    ):
        return None
    try:
        session = _sessions.get(connection.connection)
        if session is None:
            session = _sessions[connection.connection] = {}
    except TypeError:  # a driver connection that cannot be weakly referenced
        return None
    return session


@functools.cache
def _binds_on_client(cursor_class: type) -> bool:
    """Whether the cursor is psycopg 3's, writing the parameters into the SQL text.

    ``EXECUTE name(%s)`` needs it: a parameter sent apart ($1, psycopg's
    server-side binding, ``OPTIONS={"server_side_binding": True}``) is
    refused in a utility statement. psycopg2 would do, but is not tested.
    """
    try:
        from psycopg import ClientCursor
    except ImportError:  # psycopg2
        return False
    return issubclass(cursor_class, ClientCursor)


@functools.lru_cache(maxsize=512)
def _prepared(kind: str, sql: str) -> tuple[str, str, str]:
    """The name, ``PREPARE`` and ``EXECUTE`` of a statement whose parameters are ``%s``.

    The name is the kind and a hash of the text: the same text, the same name.
    """
    name = f"boogie_{kind}_{hashlib.sha256(sql.encode()).hexdigest()[:24]}"
    pieces = sql.split("%s")
    body = pieces[0] + "".join(f"${number}{piece}" for number, piece in enumerate(pieces[1:], 1))
    body = body.replace("%%", "%")  # sent without parameters: nothing is unescaped
    texts[name] = body
    execute = f"EXECUTE {name}"
    if len(pieces) > 1:
        execute += f"({', '.join(['%s'] * (len(pieces) - 1))})"
    return name, f"PREPARE {name} AS {body}", execute


def _deallocate(cursor: Any, name: str) -> None:
    try:
        cursor.execute(f"DEALLOCATE {name}")
    except Error:
        pass  # not there after all: nothing to drop


def _missed(alias: str, name: str, state: str) -> None:
    misses = _misses[alias] = _misses.get(alias, 0) + 1
    if misses == MAX_MISSES:
        logger.warning(
            "prepared statements off database=%s: %s sessions did not hold the "
            "statements prepared on them (last %s, SQLSTATE %s); a connection pooler "
            "in transaction mode? BOOGIE_TASKS_PREPARED_STATEMENTS = False turns them off",
            alias, misses, name, state,
        )  # fmt: skip


# Values in, values out


def _split(
    kinds: Sequence[tuple[Any, type | None, bool]], values: Iterable[Any], connection: Any
) -> tuple[tuple[str | None, ...], list[Any]]:
    """Each value as SQL text when it is an empty one, else as a parameter.

    Most columns of a record hold an empty value (NULL, '', 0, false, [] or
    {}); written out in the SQL, whose text is cached per shape, they cost no
    parameter to prepare and send. ``kinds`` are the fields' (see
    ``_kinds``). Returns the literal (or None) of each value, and the
    parameters of the others.
    """
    literals: list[str | None] = []
    params: list[Any] = []
    false = _FALSE.get(connection.vendor)  # None: every value is a parameter
    for (field, plain, json), value in zip(kinds, values, strict=True):
        if false is not None:
            if value is None:
                literals.append("NULL")  # every field of a record sends None as NULL
                continue
            kind = type(value)
            if kind is plain and not value:
                literals.append("''" if plain is str else false if plain is bool else "0")
                continue
            if json and (kind is list or kind is dict) and not value:
                literals.append("'[]'" if kind is list else "'{}'")
                continue
        literals.append(None)
        params.append(_param(field, plain, value, connection))
    return tuple(literals), params


@functools.cache
def _kinds(names: tuple[str, ...] | None) -> tuple[tuple[Any, type | None, bool], ...]:
    """Each field's (field, the type it sends unchanged, whether JSON), by name or all."""
    fields = _meta.concrete_fields if names is None else [_meta.get_field(n) for n in names]
    return tuple(_kind(field) for field in fields)


def _kind(field: Any) -> tuple[Any, type | None, bool]:
    return field, _PLAIN.get(type(field)), type(field) is models.JSONField


@functools.cache
def _insert_reads() -> tuple[Callable[[TaskRecord], Any], ...]:
    """How ``save()`` reads each concrete field of a new record: ``pre_save(record, True)``.

    For the fields whose ``pre_save`` only reads the attribute (all but a
    date with ``auto_now`` or ``auto_now_add``), the attribute is read directly.
    """
    plain = (models.Field.pre_save, models.DateField.pre_save, models.DateTimeField.pre_save)
    reads: list[Callable[[TaskRecord], Any]] = []
    for field in _meta.concrete_fields:
        stamped = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        if type(field).pre_save in plain and not stamped:
            reads.append(operator.attrgetter(field.attname))
        else:
            reads.append(functools.partial(_pre_save, field))
    return tuple(reads)


def _pre_save(field: Any, record: TaskRecord) -> Any:
    return field.pre_save(record, True)


# The vendors whose empty values are written out (any other gets parameters
# only), with how each writes false.
_FALSE = {"postgresql": "false", "sqlite": "0"}


def _prep(name: str, value: Any, connection: Any) -> Any:
    field, plain, _json = _kinds((name,))[0]
    return _param(field, plain, value, connection)


def _param(field: Any, plain: type | None, value: Any, connection: Any) -> Any:
    """The value as the field sends it to the database (``plain``: see ``_kinds``)."""
    # A str for a text column, an int for an integer one, a bool for a boolean
    # one (or None for any of them) goes to the database as it is: the field
    # would return it unchanged.
    if plain is not None and (value is None or type(value) is plain):
        return value
    return field.get_db_prep_save(value, connection)


# The plain fields, and the type of value each sends to the database unchanged.
_PLAIN: dict[type, type] = {
    models.CharField: str,
    models.TextField: str,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.PositiveIntegerField: int,
    models.BooleanField: bool,
}


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
def _pk_index(model: type[models.Model]) -> int:
    return model._meta.concrete_fields.index(model._meta.pk)


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


@functools.lru_cache(maxsize=64)
def _insert_sql(alias: str, vendor: str, literals: tuple[str | None, ...]) -> str:
    quote = _quote(alias)
    columns = ", ".join(quote(field.column) for field in _meta.concrete_fields)
    marks = ", ".join("%s" if literal is None else literal for literal in literals)
    return f"INSERT INTO {quote(_meta.db_table)} ({columns}) VALUES ({marks})"


def _assignments(
    quote: Callable[[str], str], names: Sequence[str], literals: Sequence[Any]
) -> list[str]:
    return [
        f"{quote(_column(name))} = {'%s' if literal is None else literal}"
        for name, literal in zip(names, literals, strict=True)
    ]


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


@functools.lru_cache(maxsize=128)
def _update_sql(
    alias: str,
    vendor: str,
    names: tuple[str, ...],
    literals: tuple[str | None, ...],
    fenced: tuple[str, ...],
) -> str:
    quote = _quote(alias)
    assignments = ", ".join(_assignments(quote, names, literals))
    where = f"{quote(_column('id'))} = %s"
    if fenced:
        where += " AND " + _unindexed([f"{quote(_column(name))} = %s" for name in fenced])
    return f"UPDATE {quote(_meta.db_table)} SET {assignments} WHERE {where}"


@functools.lru_cache(maxsize=32)
def _claim_sql(
    alias: str,
    vendor: str,
    names: tuple[str, ...],
    literals: tuple[str | None, ...],
    statuses: int,
    due_only: bool,
    own_transaction: bool,
) -> str:
    """The claim; in a transaction of its own, committed without waiting for the disk.

    On PostgreSQL, a claim that is its own transaction (autocommit, as in a
    worker) turns ``synchronous_commit`` off for that transaction alone
    (``set_config(..., true)``). Its commit is visible to every other session
    at once, so the fence holds as before; only its flush to disk is left to
    the next synchronous commit, at the latest the run's finishing UPDATE,
    which flushes the claim with it. A server crash in between can lose the
    claim: the record is READY again and is published again, as a run whose
    worker was lost would be tried again. In the caller's transaction the
    setting would outlive the claim, so there the claim is written as it is.
    """
    quote = _quote(alias)
    attempts = quote(_column("attempts"))
    assignments = [f"{attempts} = {attempts} + 1", *_assignments(quote, names, literals)]
    conditions = [
        f"{quote(_column('status'))} IN ({', '.join(['%s'] * statuses)})",
        # The cap: a task that kills its own process cannot be started for ever.
        f"{attempts} < {quote(_column('max_attempts'))}",
    ]
    if due_only:
        run_at = quote(_column("run_at"))
        conditions.append(f"({run_at} IS NULL OR {run_at} <= %s)")
    table = quote(_meta.db_table)
    returning = ", ".join(f"{table}.{quote(field.column)}" for field in _meta.concrete_fields)
    unflushed = ""
    if own_transaction and vendor == "postgresql":
        unflushed = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS boogie_claim "
    return (
        f"UPDATE {table} SET {', '.join(assignments)} {unflushed}"
        f"WHERE {quote(_column('id'))} = %s AND {_unindexed(conditions)} RETURNING {returning}"
    )


@functools.lru_cache(maxsize=64)
def _claim_object_sql(shape: tuple[Any, ...], model: type[models.Model]) -> str:
    """The claim of ``shape`` (see ``_claim_parts``), joined to the object it expects."""
    alias = shape[0]
    quote = _quote(alias)
    claim = _claim_sql(*shape)
    meta = model._meta
    columns = ", ".join(f"boogie_object.{quote(field.column)}" for field in meta.concrete_fields)
    # CASE first: object_id is cast only for a record of this model, whose
    # object_id is str() of a primary key of this type.
    pk_type = meta.pk.cast_db_type(connections[alias])
    object_id = (
        f"CASE WHEN claimed.{quote(_column('content_type'))} = %s "
        f"THEN CAST(claimed.{quote(_column('object_id'))} AS {pk_type}) END"
    )
    return (
        f"WITH claimed AS ({claim}) SELECT claimed.*, {columns} FROM claimed "
        f"LEFT JOIN {quote(meta.db_table)} AS boogie_object "
        f"ON boogie_object.{quote(meta.pk.column)} = {object_id}"
    )
