"""Claiming, running and finishing records: the runner driven directly."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boogie_tasks import TaskStatus, progress, runner, statements
from boogie_tasks.exceptions import InvalidState, ObjectDeleted, UnknownTask
from boogie_tasks.models import TaskRecord
from boogie_tasks.progress import ProgressWriter
from boogie_tasks.runner import claim, finish, run
from tests.sql import sent, verbs
from tests.testapp import tasks
from tests.testapp.models import Novel

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_run_claims_runs_and_finishes_in_three_queries(book):
    """On a worker (autocommit): claim+load, object fetch, finish."""
    record = TaskRecord.objects.create(
        task_name=tasks.describe.name, content_type_id=_content_type(book), object_id=book.pk
    )
    run(str(record.pk))  # warm the ContentType cache
    record = TaskRecord.objects.create(
        task_name=tasks.describe.name, content_type_id=_content_type(book), object_id=book.pk
    )
    with CaptureQueriesContext(connection) as queries:
        run(str(record.pk))
    expected = ["UPDATE", "SELECT", "UPDATE"]
    if connection.vendor not in ("postgresql", "sqlite"):
        expected = ["UPDATE", "SELECT", "SELECT", "UPDATE"]
    assert verbs(queries) == expected, queries.captured_queries
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.attempts == 1


def _content_type(obj):
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(obj).pk


def test_a_second_message_for_the_same_record_is_dropped(book, tmp_path):
    marker = tmp_path / "ran"
    record = tasks.describe.paused(book, marker=str(marker))
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    run(str(record.pk))
    run(str(record.pk))
    record.refresh_from_db()
    assert record.attempts == 1
    assert marker.read_text().splitlines() == [str(book.pk)]


def test_claim_returns_the_loaded_record_and_bumps_attempts(book):
    record = tasks.describe.paused(book, "x")
    claimed = claim(record.pk, [TaskStatus.PAUSED])
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.args) == (TaskStatus.RUNNING, 1, ["x"])
    assert claimed.content_type_id == record.content_type_id
    assert claimed.object_id == str(book.pk) and claimed.started_at and claimed.worker
    assert claim(record.pk, [TaskStatus.PAUSED]) is None


def test_claim_refuses_a_record_that_is_not_due(book):
    record = tasks.describe.paused(book)
    later = timezone.now() + datetime.timedelta(minutes=5)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, run_at=later)
    assert claim(record.pk, [TaskStatus.READY], due_only=True) is None
    assert claim(record.pk, [TaskStatus.READY]) is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")
def test_a_claim_of_its_own_commits_without_waiting_for_the_disk_and_only_itself(book):
    """In autocommit the claim turns synchronous_commit off for its own transaction only.

    In the caller's transaction it must not: the setting would outlive the claim
    and cover the caller's own writes.
    """
    record = tasks.describe.paused(book)
    with CaptureQueriesContext(connection) as queries:
        claimed = claim(record.pk, [TaskStatus.PAUSED])
    assert claimed is not None and claimed.status == TaskStatus.RUNNING
    assert "set_config('synchronous_commit', 'off', true)" in sent(queries)[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    # Committed and visible to every other session at once: the fence holds.
    assert TaskRecord.objects.get(pk=record.pk).status == TaskStatus.RUNNING
    assert claim(record.pk, [TaskStatus.PAUSED]) is None

    other = tasks.describe.paused(book)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            assert claim(other.pk, [TaskStatus.PAUSED]) is not None
        assert "synchronous_commit" not in sent(queries)[0]
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


def test_claim_without_returning_gives_the_same_record(book, monkeypatch):
    monkeypatch.setattr("boogie_tasks.statements.can_return", lambda using: False)
    record = tasks.describe.paused(book, "y")
    claimed = claim(record.pk, [TaskStatus.PAUSED])
    assert (claimed.status, claimed.attempts, claimed.args) == (TaskStatus.RUNNING, 1, ["y"])


def test_records_written_and_claimed_on_a_cursor_read_back_as_the_orm_reads_them(book):
    """The INSERT and the claim skip the ORM's compiler: every field must still match."""
    record = tasks.describe.using(queue="other", priority=3).paused(
        book, "a", {"nested": [1, 2.5, None]}
    )
    stored = TaskRecord.objects.get(pk=record.pk)
    for field in TaskRecord._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(record, field.attname), field.name
    claimed = claim(record.pk, [TaskStatus.PAUSED])
    stored = TaskRecord.objects.get(pk=record.pk)
    for field in TaskRecord._meta.concrete_fields:
        value = getattr(claimed, field.attname)
        assert value == getattr(stored, field.attname), field.name
        assert type(value) is type(getattr(stored, field.attname)), field.name
    assert not claimed._state.adding and claimed._state.db == "default"


def test_only_empty_values_of_the_fields_type_are_written_out_in_the_sql():
    from django.db import models

    def literal(field, value):
        literals, params = statements._split([statements._kind(field)], [value], connection)
        assert len(params) == (literals[0] is None)  # a value is one or the other
        return literals[0]

    text, number, flag, data = (
        models.CharField(), models.IntegerField(), models.BooleanField(), models.JSONField()
    )  # fmt: skip
    assert [literal(text, ""), literal(number, 0), literal(data, []), literal(data, {})] == [
        "''", "0", "'[]'", "'{}'",
    ]  # fmt: skip
    assert literal(flag, False) in ("false", "0") and literal(text, None) == "NULL"
    # Values that are not empty, or not of the type the field sends unchanged, are parameters.
    for field, value in [(text, "x"), (text, 0), (number, False), (data, [0])]:
        assert literal(field, value) is None, (field, value)
    with pytest.raises(ValueError):  # a parameter, which the field itself refuses
        literal(number, "")


def test_a_record_with_every_column_empty_or_not_reads_back_as_the_orm_reads_it(book):
    record = tasks.describe.paused(book)
    values = {"error": "", "traceback": "x", "progress_total": 0, "history": [], "result": {}}
    assert statements.update_fenced("default", record.pk, {"status": "PAUSED"}, values) == 1
    stored = TaskRecord.objects.get(pk=record.pk)
    assert (stored.error, stored.traceback, stored.progress_total) == ("", "x", 0)
    assert (stored.history, stored.result) == ([], {})


def _assert_read_as_the_orm_reads(fetched, obj):
    """Every field of ``fetched`` has the value, and the type, the ORM reads for ``obj``."""
    model = type(obj)
    expected = model._base_manager.get(pk=obj.pk)
    assert type(fetched) is model and fetched == expected
    for field in model._meta.concrete_fields:
        value = getattr(fetched, field.attname)
        assert value == getattr(expected, field.attname), field.name
        assert type(value) is type(getattr(expected, field.attname)), field.name


def test_the_object_is_fetched_as_the_orm_fetches_it(any_object):
    """get_object() skips the ORM's compiler: the instance must still be the ORM's."""
    model = type(any_object)
    fetched = statements.get_object(model, str(any_object.pk), "default")
    _assert_read_as_the_orm_reads(fetched, any_object)
    assert not fetched._state.adding and fetched._state.db == "default"
    model.objects.filter(pk=any_object.pk).delete()
    with pytest.raises(model.DoesNotExist):
        statements.get_object(model, str(any_object.pk), "default")


def test_an_object_spanning_two_tables_is_fetched_through_the_orm(db):
    novel = Novel.objects.create(title="Emma", pages=7, genre="comedy")
    with CaptureQueriesContext(connection) as queries:
        fetched = statements.get_object(Novel, str(novel.pk), "default")
    assert (type(fetched), fetched.title, fetched.pages, fetched.genre) == (
        Novel, "Emma", 7, "comedy",
    )  # fmt: skip
    assert "INNER JOIN" in queries.captured_queries[0]["sql"]


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="an UPDATE in WITH (BOOGIE_TEST_DATABASE_URL)"
)


def _claim_with(record, model):
    """Claim a PAUSED record, reading an object of ``model`` with it."""
    from django.contrib.contenttypes.models import ContentType

    now = timezone.now()
    return statements.claim_with_object(
        "default", record.pk, [TaskStatus.PAUSED], now, runner._claim_values(now),
        ContentType.objects.get_for_model(model).pk, model,
    )  # fmt: skip


@postgresql_only
def test_the_claim_reads_the_object_with_the_record_as_the_orm_reads_both(any_object):
    model = type(any_object)
    assert statements.can_claim_with_object("default", model)
    record = tasks.describe.paused(any_object, "x")
    with CaptureQueriesContext(connection) as queries:
        claimed, fetched = _claim_with(record, model)
    assert len(queries) == 1
    stored = TaskRecord.objects.get(pk=record.pk)
    assert (claimed.status, claimed.attempts, claimed.args) == (TaskStatus.RUNNING, 1, ["x"])
    for field in TaskRecord._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(stored, field.attname), field.name
    _assert_read_as_the_orm_reads(fetched, any_object)
    assert _claim_with(record, model) == (None, None)  # claimed once only


@postgresql_only
def test_a_record_of_another_model_is_claimed_without_its_object(any_object):
    """The object_id of another model (a UUID, a slug) is never cast to the expected pk type."""
    from tests.testapp.models import Book, Document

    other = Document if type(any_object) is Book else Book
    record = tasks.describe.paused(any_object)
    claimed, fetched = _claim_with(record, other)
    assert claimed is not None and claimed.status == TaskStatus.RUNNING and fetched is None


@postgresql_only
def test_a_record_whose_object_is_gone_is_claimed_without_it(book):
    record = tasks.describe.paused(book)
    type(book).objects.filter(pk=book.pk).delete()
    claimed, fetched = _claim_with(record, type(book))
    assert claimed is not None and claimed.status == TaskStatus.RUNNING and fetched is None


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_object_id_the_expected_pk_cannot_take_fails_the_run_not_the_claim(book):
    """A hand-written object_id that does not cast: the claim goes on without the object."""
    primer = tasks.describe.paused(book)
    broken = TaskRecord.objects.create(
        task_name=tasks.describe.name, content_type_id=_content_type(book),
        object_id="not-a-number", status=TaskStatus.READY,
    )  # fmt: skip
    TaskRecord.objects.filter(pk=primer.pk).update(status=TaskStatus.READY)
    run.push_request(shadow=tasks.describe.name)
    try:
        assert run(str(primer.pk)) == TaskStatus.SUCCESSFUL  # the model is now expected
        assert run(str(broken.pk)) == TaskStatus.FAILED
    finally:
        run.pop_request()
    broken.refresh_from_db()
    assert broken.attempts == 1 and "expected a number" in broken.error, broken.error


def test_models_the_claim_cannot_read_with_the_record(db):
    """Other databases' vendors, and models spanning two tables, are fetched apart."""
    from tests.testapp.models import Book

    assert not statements.can_claim_with_object("default", Novel)
    assert statements.can_claim_with_object("default", Book) == (connection.vendor == "postgresql")


@pytest.mark.django_db(transaction=True)
def test_a_workers_runs_of_a_task_read_its_object_with_the_claim(book, tmp_path):
    """In a worker (Celery's shadow name is the task's), from the second run on: two statements."""
    marker, pk = tmp_path / "ran", str(book.pk)
    runs = [tasks.describe.paused(book, marker=str(marker)) for _ in range(3)]
    TaskRecord.objects.update(status=TaskStatus.READY)
    run.push_request(shadow=tasks.describe.name)
    try:
        run(str(runs[0].pk))
        with CaptureQueriesContext(connection) as queries:
            run(str(runs[1].pk))
        book.delete()  # the last run's object is gone: read apart, and the run fails
        run(str(runs[2].pk))
    finally:
        run.pop_request()
    if connection.vendor == "postgresql":
        assert verbs(queries) == ["WITH", "UPDATE"], queries.captured_queries
    else:
        assert verbs(queries) == ["UPDATE", "SELECT", "UPDATE"], queries.captured_queries
    done = [TaskRecord.objects.get(pk=record.pk) for record in runs]
    assert [record.status for record in done] == [
        TaskStatus.SUCCESSFUL, TaskStatus.SUCCESSFUL, TaskStatus.FAILED,
    ]  # fmt: skip
    assert done[2].error.startswith("ObjectDeleted:"), done[2].error
    assert marker.read_text().splitlines() == [pk, pk]


def test_a_primary_key_the_field_cannot_take_is_refused_as_by_the_orm(book):
    with pytest.raises(ValueError, match="expected a number"):
        statements.get_object(type(book), "not-a-number", "default")


def test_finish_is_fenced_by_attempts(book):
    record = tasks.describe.paused(book)
    stale = claim(record.pk, [TaskStatus.PAUSED])
    # The run is given up and claimed again: attempts moves on to 2.
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, max_attempts=2)
    current = claim(record.pk, [TaskStatus.READY])
    writer = ProgressWriter(record.pk, stale.attempts, record.task_name)
    assert finish(stale, TaskStatus.FAILED, writer, error="late") is False
    record.refresh_from_db()
    assert (record.status, record.attempts, record.error) == (TaskStatus.RUNNING, 2, "")
    assert finish(current, TaskStatus.SUCCESSFUL, writer, result=1) is True
    record.refresh_from_db()
    assert (record.status, record.result) == (TaskStatus.SUCCESSFUL, 1)


def test_a_final_state_is_never_overwritten(book):
    record = tasks.describe.paused(book)
    record.cancel()
    assert claim(record.pk, TaskStatus.waiting()) is None
    with pytest.raises(InvalidState, match="is CANCELED"):
        record.run()
    with pytest.raises(InvalidState, match="is CANCELED"):
        record.enqueue()
    assert record.cancel() is False
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED


def test_unknown_task_fails_clearly_and_imports_nothing(book):
    record = TaskRecord.objects.create(
        task_name="os.system", content_type_id=_content_type(book), object_id=book.pk
    )
    run(str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.error.startswith("UnknownTask: no task named 'os.system' is registered")
    paused = TaskRecord.objects.create(
        task_name="nope", content_type_id=_content_type(book), object_id=book.pk,
        status=TaskStatus.PAUSED,
    )  # fmt: skip
    with pytest.raises(UnknownTask):
        paused.run()
    paused.refresh_from_db()
    assert paused.status == TaskStatus.FAILED


def test_object_deleted_before_the_run(book):
    record = tasks.describe.paused(book)
    pk = book.pk
    book.delete()
    with pytest.raises(ObjectDeleted):
        record.run()
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.error == (
        f"ObjectDeleted: testapp.Book with pk='{pk}' no longer exists "
        "(task tests.testapp.tasks.describe)"
    )
    assert record.traceback == ""


@override_settings(BOOGIE_TASKS_PROGRESS_INTERVAL=0)
def test_cancel_waiting_and_running_records(book):
    paused = tasks.describe.paused(book)
    assert paused.cancel() is True
    assert paused.status == TaskStatus.CANCELED and paused.finished_at

    running = tasks.count_pages.paused(book)
    claimed = claim(running.pk, [TaskStatus.PAUSED])
    assert running.cancel() is True
    assert running.status == TaskStatus.RUNNING and running.cancel_requested

    from boogie_tasks.runner import execute

    execute(claimed)  # its first progress write sees the request and stops
    running.refresh_from_db()
    assert running.status == TaskStatus.CANCELED
    assert running.finished_at is not None


def test_progress_outside_a_task_does_nothing():
    assert list(progress(range(3))) == [0, 1, 2]
    progress.set(1, 2, "nothing")
    progress.advance()


def test_a_message_a_little_early_waits_for_run_at(book):
    import time as clock

    record = tasks.describe.paused(book)
    soon = timezone.now() + datetime.timedelta(seconds=0.5)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, run_at=soon)
    started = clock.monotonic()
    assert run(str(record.pk)) == TaskStatus.SUCCESSFUL
    assert clock.monotonic() - started >= 0.3
    far = tasks.describe.paused(book)
    later = timezone.now() + datetime.timedelta(minutes=5)
    TaskRecord.objects.filter(pk=far.pk).update(status=TaskStatus.READY, run_at=later)
    assert run(str(far.pk)) == "DROPPED"


def test_the_claim_caps_attempts(book):
    record = tasks.describe.paused(book)
    assert claim(record.pk, [TaskStatus.PAUSED]) is not None
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    assert claim(record.pk, [TaskStatus.READY]) is None  # max_attempts is 1
