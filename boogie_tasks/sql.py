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
the same for the ORM's fenced writes). The row comes back through
``TaskRecord.objects.raw()``, so Django converts its values as for any query.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, cast

from django.db import connections, models

from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus

__all__ = [
    "CLAIM_READY",
    "CLAIM_WAITING",
    "FINISH",
    "INSERT",
    "can_return",
    "claim",
    "execute",
    "insert",
]

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
    execute(INSERT, using, values)
    record._state.adding, record._state.db = False, using


def claim(statement: str, using: str, pk: Any, now: Any, worker: str) -> TaskRecord | None:
    """Run one of the claim statements; return the record as it left it, or None."""
    # The id as its field sends it (text on SQLite); raw() adapts the time itself.
    pk_field = cast(models.UUIDField, TaskRecord._meta.get_field("id"))
    params = {
        "id": pk_field.get_db_prep_value(pk, connections[using]),
        "now": now,
        "worker": worker,
    }
    # list(): the cursor is read to its end, so SQLite finishes the statement.
    rows = list(TaskRecord.objects.db_manager(using).raw(statement, params))
    return rows[0] if rows else None
