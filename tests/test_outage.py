"""A database that drops a worker's connection: the run goes on, nothing is lost."""

from __future__ import annotations

import logging

import pytest
from celery.exceptions import Reject
from django.db import OperationalError, connection

from boogie_tasks import TaskStatus, runner
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import run
from tests.servers import terminate_backend
from tests.testapp import tasks

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="ends a server process (BOOGIE_TEST_DATABASE_URL)"
)
pytestmark = [pytest.mark.django_db(transaction=True)]


def _ready(task, *args):
    record = task.paused(*args)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    return record


@postgresql_only
def test_a_claim_on_a_connection_the_database_dropped_is_made_on_a_fresh_one(book):
    record = _ready(tasks.describe, book)
    terminate_backend(connection)  # as a restart while the worker waited for work
    assert run(str(record.pk)) == TaskStatus.SUCCESSFUL
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.attempts == 1


@postgresql_only
def test_a_finished_body_keeps_its_result_when_the_connection_drops(book, caplog):
    caplog.set_level(logging.WARNING, logger="boogie_tasks")
    record = _ready(tasks.lose_connection, book, {"kept": True})
    assert run(str(record.pk)) == TaskStatus.SUCCESSFUL
    record.refresh_from_db()
    assert (record.status, record.result, record.attempts) == (
        TaskStatus.SUCCESSFUL, {"kept": True}, 1,
    )  # fmt: skip
    assert [entry["status"] for entry in record.history] == ["SUCCESSFUL"]
    assert any("finish of" in r.getMessage() for r in caplog.records)


@pytest.fixture
def database_away(monkeypatch):
    """Every statement of the run path fails as on a database that is not there."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused (the test's database is away)")

    monkeypatch.setattr(runner, "CLAIM_RETRY_SECONDS", 0.3)
    with connection.execute_wrapper(refuse):
        yield


def test_a_claim_that_cannot_reach_the_database_sends_its_message_back(book, database_away):
    with pytest.raises(Reject) as rejected:
        run("01a25300-0000-7000-8000-000000000000")
    assert rejected.value.requeue is True  # acks_late: the broker delivers it again


def test_a_finish_that_cannot_reach_the_database_is_left_to_recovery(book, settings, caplog):
    """Past BOOGIE_TASKS_STALE_AFTER the record stays RUNNING: the lost-run sweep's."""
    settings.BOOGIE_TASKS_STALE_AFTER = 0.3
    settings.BOOGIE_TASKS_HEARTBEAT_INTERVAL = 0.1
    caplog.set_level(logging.ERROR, logger="boogie_tasks")
    record = _ready(tasks.describe, book)
    claimed = runner.transitions.claim(record.pk, worker="tests:1")

    def refuse_updates(execute, sql, params, many, context):
        if sql.lstrip().startswith("UPDATE"):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_updates):
        runner.execute(claimed, obj=book)
    record.refresh_from_db()
    assert record.status == TaskStatus.RUNNING
    assert any(r.getMessage().startswith("finish lost") for r in caplog.records)


def test_a_progress_write_that_meets_the_outage_does_not_fail_the_run(book, settings):
    """Progress is best effort: the task goes on, and the finish carries the last values."""
    settings.BOOGIE_TASKS_PROGRESS_INTERVAL = 0
    record = tasks.count_pages.paused(book)
    claimed = runner.transitions.claim(record.pk, worker="tests:1", waiting=True)
    refused = []

    def refuse_progress(execute, sql, params, many, context):
        if "progress_current" in sql and "heartbeat_at" in sql and not refused:
            refused.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_progress):
        assert runner.execute(claimed, obj=book) == book.pages
    record.refresh_from_db()
    assert refused and record.status == TaskStatus.SUCCESSFUL
    assert record.progress_current == record.progress_total == book.pages


@postgresql_only
def test_a_dispatcher_tick_after_a_restart_runs_on_a_fresh_connection(book):
    record = _ready(tasks.describe, book)
    TaskRecord.objects.filter(pk=record.pk).update(queued_at=None)  # never published
    terminate_backend(connection)
    assert runner.dispatch()["republished"] == 1
    assert runner.dispatch()["republished"] == 0  # and the next tick too
