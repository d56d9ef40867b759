"""A run's statements as prepared statements: PostgreSQL; in a transaction, INSERTs only."""

from __future__ import annotations

import logging

import pytest
from django.db import DataError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from boogie_tasks import TaskStatus, runner, statements
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import claim, run
from tests.sql import verbs
from tests.testapp import tasks
from tests.testapp.models import Book

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PREPARE and EXECUTE (BOOGIE_TEST_DATABASE_URL)"
)


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    """Each test starts and ends with nothing prepared and no miss counted.

    The tests drop prepared statements behind the module's back: the next test
    must not find them missing.
    """
    monkeypatch.setattr(statements, "_misses", {})
    monkeypatch.setattr(statements, "_unpreparable", set())
    monkeypatch.setattr(runner, "_expected", {})  # the first run fetches its object apart
    _forget()
    yield
    _forget()


def _forget():
    if connection.vendor == "postgresql" and connection.connection is not None:
        connection.connection.execute("DEALLOCATE ALL")
        statements._sessions.pop(connection.connection, None)


def _ready(book, n):
    records = [tasks.describe.paused(book) for _ in range(n)]
    TaskRecord.objects.filter(pk__in=[r.pk for r in records]).update(status=TaskStatus.READY)
    return records


def _runs(records):
    """Run the records as a worker does (Celery's shadow name is the task's)."""
    captured = []
    run.push_request(shadow=tasks.describe.name)
    try:
        for record in records:
            with CaptureQueriesContext(connection) as queries:
                assert run(str(record.pk)) == TaskStatus.SUCCESSFUL
            captured.append(queries)
    finally:
        run.pop_request()
    return captured


def _send(kind, sql, params):
    """Send one statement as boogie_tasks sends its own; return the cursor's first row."""
    with connection.cursor() as cursor:
        statements._execute(connection, cursor, kind, sql, params)
        return cursor.fetchone() if cursor.description else cursor.rowcount


def _sql(queries):
    return [query["sql"] for query in queries.captured_queries]


def _words(queries):
    return [sql.split()[0] for sql in _sql(queries)]


def _prepared_on_the_session():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_workers_statements_are_prepared_at_their_second_use_on_a_session(book):
    first, second, third, fourth = _runs(_ready(book, 4))
    # The first run (no object expected yet): claim, object fetch, finish, each a first use.
    assert _words(first) == ["UPDATE", "SELECT", "UPDATE"]
    # The second claims with the object, a statement of its own; the finish is prepared.
    assert _words(second) == ["WITH", "PREPARE", "EXECUTE"]
    assert _words(third) == ["PREPARE", "EXECUTE", "EXECUTE"]
    # From then on, two statements, parsed and planned once per session.
    sent = _sql(fourth)
    assert [sql.split("(")[0].rsplit("_", 1)[0] for sql in sent] == [
        "EXECUTE boogie_claim", "EXECUTE boogie_update",
    ]  # fmt: skip
    assert verbs(fourth) == ["WITH", "UPDATE"]
    assert {sql.split()[1].split("(")[0] for sql in sent} <= _prepared_on_the_session()

    # A connection that lives for one task (Celery closes them, out of the box)
    # never pays a PREPARE; a new session prepares again at the second use.
    connection.close()
    fifth, sixth = _runs(_ready(book, 2))
    assert _words(fifth) == ["WITH", "UPDATE"]
    assert _words(sixth) == ["PREPARE", "EXECUTE"] * 2


@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_inside_a_transaction(book):
    """A failed EXECUTE would break the caller's transaction: there, statements go as they are."""
    records = [tasks.describe.paused(book) for _ in range(3)]
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            for record in records:
                assert claim(record.pk, [TaskStatus.PAUSED]) is not None
    assert verbs(queries) == ["UPDATE"] * 3
    assert not any(sql.startswith(("PREPARE", "EXECUTE")) for sql in _sql(queries))


def _queued_in_one_transaction(book, n):
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.get_for_model(book)  # cached: not in the queries
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            records = [tasks.describe.delayed(book, str(i)) for i in range(n)]
    return records, queries


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_many_runs_queued_in_one_transaction_insert_by_a_statement_prepared_in_it(book):
    held = statements.HELD_SQL.split("%s")[0]
    records, queries = _queued_in_one_transaction(book, 5)
    # Two sent as they are; then, once, is it held? No: prepared, and executed from then on.
    assert _words(queries) == ["INSERT", "INSERT", "SELECT", "PREPARE", *["EXECUTE"] * 3]
    assert _sql(queries)[2].startswith(held)
    assert verbs(queries) == ["INSERT"] * 5  # what executed_sql reads: the check is left out
    assert TaskRecord.objects.filter(pk__in=[r.pk for r in records]).count() == 5

    # The next transaction asks again (a pooler may have given it another
    # session); this one holds the statement: nothing more to prepare.
    _, again = _queued_in_one_transaction(book, 4)
    assert _words(again) == ["INSERT", "INSERT", "SELECT", "EXECUTE", "EXECUTE"]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_transaction_served_by_a_session_without_the_statement_prepares_it_again(book):
    """As behind a pooler in transaction mode: what a session held is never taken on trust."""
    _queued_in_one_transaction(book, 3)
    # Another session, or one reset in between (DISCARD ALL): nothing prepared on it.
    connection.connection.execute("DEALLOCATE ALL")
    records, queries = _queued_in_one_transaction(book, 4)
    assert _words(queries) == ["INSERT", "INSERT", "SELECT", "PREPARE", "EXECUTE", "EXECUTE"]
    assert TaskRecord.objects.filter(pk__in=[r.pk for r in records]).count() == 4


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_view_queuing_a_run_or_two_pays_no_query_more(book):
    _queued_in_one_transaction(book, 3)  # prepared on this session
    _, queries = _queued_in_one_transaction(book, 2)
    assert _words(queries) == ["INSERT", "INSERT"]
    # Nor do the runs of a savepoint (their own batch) or lone inserts of other kinds.
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            tasks.describe.delayed(book, "outer")
            for n in range(2):
                with transaction.atomic():
                    tasks.describe.delayed(book, str(n))
            tasks.describe.paused(book)
            tasks.describe.schedule(60, book)
    assert _words(queries) == [
        "INSERT", *["SAVEPOINT", "INSERT", "RELEASE"] * 2, "INSERT", "INSERT",
    ]  # fmt: skip


@postgresql_only
@pytest.mark.django_db(transaction=True)
@override_settings(BOOGIE_TASKS_PREPARED_STATEMENTS=False)
def test_the_setting_turns_preparing_off_in_a_transaction_too(book):
    _, queries = _queued_in_one_transaction(book, 5)
    assert _words(queries) == ["INSERT"] * 5
    assert not _prepared_on_the_session()


@postgresql_only
@pytest.mark.django_db(transaction=True)
@override_settings(BOOGIE_TASKS_PREPARED_STATEMENTS=False)
def test_the_setting_turns_preparing_off(book):
    first, second, third = _runs(_ready(book, 3))
    assert _words(first) == ["UPDATE", "SELECT", "UPDATE"]
    assert _words(second) == _words(third) == ["WITH", "UPDATE"]
    assert not _prepared_on_the_session()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_the_session_lost_is_sent_as_it_is_then_prepared_again(book):
    _runs(_ready(book, 3))
    records = _ready(book, 2)
    connection.connection.execute("DEALLOCATE ALL")  # as a pooler's DISCARD ALL would
    lost, again = _runs(records)
    # EXECUTE fails (changing nothing) and the claim is sent as it is; the session
    # is taken to have lost every statement, so the finish is a first use again.
    assert _words(lost) == ["EXECUTE", "WITH", "UPDATE"]
    assert verbs(lost) == ["WITH", "WITH", "UPDATE"]  # the failed EXECUTE, read as its text
    assert _words(again) == ["PREPARE", "EXECUTE"] * 2
    assert statements._misses == {"default": 1}
    assert TaskRecord.objects.filter(status=TaskStatus.SUCCESSFUL).count() == 5


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_name_the_session_holds_already_is_not_prepared_twice(book):
    """Behind a pooler, another client may have prepared the same text on this session."""
    _runs(_ready(book, 3))
    held = _prepared_on_the_session()
    records = _ready(book, 3)
    statements._sessions.pop(connection.connection)  # as if this client had not prepared them
    unknown, duplicated, known = _runs(records)
    assert _words(unknown) == ["WITH", "UPDATE"]
    assert _words(duplicated) == ["PREPARE", "WITH", "PREPARE", "UPDATE"]
    assert _words(known) == ["EXECUTE", "EXECUTE"]
    assert statements._misses == {}  # the same name is the same text: no harm
    assert _prepared_on_the_session() == held


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_after_several_misses_the_process_stops_preparing_and_says_why(book, caplog):
    """Each statement on another session (a pooler in transaction mode): prepare no more."""
    _runs(_ready(book, 3))
    caplog.set_level(logging.WARNING, logger="boogie_tasks")
    for _ in range(statements.MAX_MISSES):
        records = _ready(book, 2)
        connection.connection.execute("DEALLOCATE ALL")
        _runs(records)
    assert statements._misses["default"] == statements.MAX_MISSES
    (queries,) = _runs(_ready(book, 1))
    assert _words(queries) == ["WITH", "UPDATE"]
    said = [record.getMessage() for record in caplog.records]
    warnings = [message for message in said if "prepared statements off" in message]
    assert len(warnings) == 1 and "BOOGIE_TASKS_PREPARED_STATEMENTS" in warnings[0], warnings


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_planned_before_a_column_changed_is_planned_again(book):
    """A migration of the object's table under a running worker: the next read still works."""
    table = Book._meta.db_table
    for _ in range(2):  # prepared at the second
        assert statements.get_object(Book, str(book.pk), "default") == book
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "title" TYPE varchar(200)')
    try:
        with CaptureQueriesContext(connection) as queries:
            assert statements.get_object(Book, str(book.pk), "default").title == "Dune"
        # "cached plan must not change result type": sent as it is, and dropped.
        assert _words(queries) == ["EXECUTE", "DEALLOCATE", "SELECT"], _sql(queries)
        assert statements._misses == {}  # not a pooler's doing
        with CaptureQueriesContext(connection) as queries:
            assert statements.get_object(Book, str(book.pk), "default").title == "Dune"
        assert _words(queries) == ["PREPARE", "EXECUTE"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "title" TYPE varchar(100)')


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_error_of_the_statement_itself_is_raised_once(book):
    """Only a prepared statement that is not as expected is sent again; a real error is not."""
    sql = 'SELECT 1 FROM "boogie_tasks_taskrecord" WHERE "id" = %s::uuid'
    _send("select", sql, ["00000000-0000-0000-0000-000000000000"])
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises(DataError, match="invalid input syntax for type uuid"):
            _send("select", sql, ["not-a-uuid"])
    assert _words(queries) == ["PREPARE", "EXECUTE"]
    assert statements._misses == {}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_connection_that_binds_on_the_server_prepares_nothing(book):
    """``EXECUTE name($1)`` is refused: with server-side binding, statements go as they are."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True}}
    other = DatabaseWrapper(settings, alias="default")
    try:
        for _ in range(3):
            with other.cursor() as cursor:
                sql = statements._select_sql("default", "postgresql", Book)
                statements._execute(other, cursor, "select", sql, [book.pk])
                assert cursor.fetchone()[0] == book.pk
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
    finally:
        other.close()
    assert statements._binds_on_client(type(connection.cursor().cursor))


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_session_holds_at_most_max_statements_of_ours(book, monkeypatch):
    monkeypatch.setattr(statements, "MAX_STATEMENTS", 1)
    first, second, third = _runs(_ready(book, 3))
    # Only the first statement used on the session (the INSERT) is ever prepared.
    assert _words(second) == _words(third) == ["WITH", "UPDATE"]
    assert len(statements._sessions[connection.connection]) == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_postgresql_cannot_prepare_is_sent_as_it_is(caplog):
    """A parameter whose type nothing says can be run with a literal, not prepared."""
    sql = "SELECT pg_typeof(%s)::text || %s"
    caplog.set_level(logging.WARNING, logger="boogie_tasks")
    with CaptureQueriesContext(connection) as queries:
        rows = [_send("select", sql, [value, value]) for value in "abc"]
    assert rows == [("unknowna",), ("unknownb",), ("unknownc",)]
    assert _words(queries) == ["SELECT", "PREPARE", "SELECT", "SELECT"]
    said = [record.getMessage() for record in caplog.records]
    assert len([m for m in said if "statement not prepared" in m]) == 1, said
    assert statements._misses == {}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_for_a_narrower_column_is_prepared_again(book):
    """Its parameter took the old column's type: the value the new one takes fails EXECUTE."""
    table = Book._meta.db_table
    sql = f'UPDATE "{table}" SET "pages" = %s WHERE "id" = %s'

    def write(pages):
        return _send("update", sql, [pages, book.pk])

    assert write(1) == write(2) == 1  # prepared at the second
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "pages" TYPE bigint')
    try:
        with CaptureQueriesContext(connection) as queries:
            assert write(3_000_000_000) == 1  # out of range for the prepared int4 parameter
        assert _words(queries) == ["EXECUTE", "DEALLOCATE", "UPDATE"], _sql(queries)
        with CaptureQueriesContext(connection) as queries:
            assert write(4_000_000_000) == 1
        assert _words(queries) == ["PREPARE", "EXECUTE"]
        book.refresh_from_db()
        assert book.pages == 4_000_000_000
    finally:
        Book.objects.filter(pk=book.pk).update(pages=1)
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "pages" TYPE integer')
