"""Claiming, running and finishing records: the runner driven directly."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boogie_tasks import Task, TaskStatus, progress, transitions
from boogie_tasks.exceptions import InvalidState, ObjectDeleted, UnknownTask
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import execute, run
from tests.helpers import claim, verbs
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
    claimed = claim(record.pk)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.args) == (TaskStatus.RUNNING, 1, ["x"])
    assert claimed.content_type_id == record.content_type_id
    assert claimed.object_id == str(book.pk) and claimed.started_at and claimed.worker
    assert claim(record.pk) is None


def test_claim_refuses_a_record_that_is_not_due(book):
    record = tasks.describe.paused(book)
    later = timezone.now() + datetime.timedelta(minutes=5)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, run_at=later)
    assert claim(record.pk, waiting=False) is None
    assert claim(record.pk) is not None


def test_claim_without_returning_gives_the_same_record(book, monkeypatch):
    monkeypatch.setattr("boogie_tasks.sql.can_return", lambda using: False)
    record = tasks.describe.paused(book, "y")
    claimed = claim(record.pk)
    assert (claimed.status, claimed.attempts, claimed.args) == (TaskStatus.RUNNING, 1, ["y"])


def test_records_written_and_claimed_on_a_cursor_read_back_as_the_orm_reads_them(book):
    """The claim is hand-written SQL read back by raw(): every field must match the ORM's."""
    record = tasks.describe.using(queue="other", priority=3).paused(
        book, "a", {"nested": [1, 2.5, None]}
    )
    stored = TaskRecord.objects.get(pk=record.pk)
    for field in TaskRecord._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(record, field.attname), field.name
    claimed = claim(record.pk)
    stored = TaskRecord.objects.get(pk=record.pk)
    for field in TaskRecord._meta.concrete_fields:
        value = getattr(claimed, field.attname)
        assert value == getattr(stored, field.attname), field.name
        assert type(value) is type(getattr(stored, field.attname)), field.name
    assert not claimed._state.adding and claimed._state.db == "default"


@pytest.mark.django_db(transaction=True)
def test_an_object_id_the_pk_cannot_take_fails_the_run_with_the_fields_error(book):
    broken = TaskRecord.objects.create(
        task_name=tasks.describe.name, content_type_id=_content_type(book),
        object_id="not-a-number", status=TaskStatus.READY,
    )  # fmt: skip
    assert run(str(broken.pk)) == TaskStatus.FAILED
    broken.refresh_from_db()
    assert broken.attempts == 1 and "expected a number" in broken.error, broken.error


def test_an_object_spanning_two_tables_is_fetched_through_the_orm(db, tmp_path):
    novel = Novel.objects.create(title="Emma", pages=7, genre="comedy")
    assert tasks.describe.call(novel, marker=str(tmp_path / "ran")) is not None
    assert (tmp_path / "ran").read_text().splitlines() == [str(novel.pk)]


def test_finish_is_fenced_by_attempts(book):
    record = tasks.describe.paused(book)
    stale = claim(record.pk)
    # The run is given up and claimed again: attempts moves on to 2.
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, max_attempts=2)
    current = claim(record.pk)
    assert transitions.finish(stale, TaskStatus.FAILED, {"error": "late"}) is False
    record.refresh_from_db()
    assert (record.status, record.attempts, record.error) == (TaskStatus.RUNNING, 2, "")
    assert transitions.finish(current, TaskStatus.SUCCESSFUL, {"result": 1}) is True
    record.refresh_from_db()
    assert (record.status, record.result) == (TaskStatus.SUCCESSFUL, 1)


def test_a_final_state_is_never_overwritten(book):
    record = tasks.describe.paused(book)
    record.cancel()
    assert claim(record.pk) is None
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
    claimed = claim(running.pk)
    assert running.cancel() is True
    assert running.status == TaskStatus.RUNNING and running.cancel_requested

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
    assert claim(record.pk) is not None
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    assert claim(record.pk) is None  # max_attempts is 1


def test_call_records_created_before_started_before_finished(book):
    tasks.describe.call(book)
    record = tasks.describe.tasks(book).get()
    assert record.created_at <= record.started_at <= record.finished_at


def test_a_terminated_run_is_logged_as_the_cancel_it_was(book, caplog):
    """The worker's SystemExit after cancel(terminate=True) is no crash and no lost finish."""
    import logging

    record = tasks.describe.paused(book)
    claimed = claim(record.pk)
    assert record.cancel(terminate=True, reason="stop") is True
    caplog.set_level(logging.INFO, logger="boogie_tasks")

    task = Task(func=_killed, name=tasks.describe.name)
    with pytest.raises(SystemExit):
        execute(claimed, task=task, obj=book)
    loud = [
        r.getMessage()
        for r in caplog.records
        if r.name == "boogie_tasks" and r.levelno >= logging.WARNING
    ]
    assert loud == []
    assert any(r.getMessage().startswith("run ended after cancel") for r in caplog.records)
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED and record.error == "Canceled: stop"
    assert [entry["status"] for entry in record.history] == ["CANCELED"]


def _killed(obj, *args, **kwargs):
    raise SystemExit(0)  # what Celery's SIGTERM does to a pool process
