"""Nothing a user sends makes a record, a page or a log grow without bound."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from boogie_tasks import TaskStatus
from boogie_tasks.exceptions import InvalidTaskArguments
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import run
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


@override_settings(BOOGIE_TASKS_MAX_ARGUMENT_SIZE=1000)
def test_an_argument_over_its_cap_is_refused_naming_the_task_argument_and_size(book):
    with pytest.raises(InvalidTaskArguments) as caught:
        tasks.echo.delayed(book, "x" * 2000)
    message = str(caught.value)
    assert message.startswith("tests.testapp.tasks.echo: argument 'value' takes 2,002 characters")
    assert "over the limit of 1,000 (BOOGIE_TASKS_MAX_ARGUMENT_SIZE)" in message
    with pytest.raises(InvalidTaskArguments, match="argument 'message' takes"):
        tasks.echo.paused(book, message="y" * 2000)
    assert TaskRecord.objects.count() == 0  # nothing written


def test_an_argument_nested_too_deeply_is_refused_with_the_librarys_error(book):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidTaskArguments, match="argument 'value' is nested too deeply"):
        tasks.echo.delayed(book, deep)
    assert TaskRecord.objects.count() == 0


@override_settings(BOOGIE_TASKS_MAX_RESULT_SIZE=1000)
def test_a_result_over_its_cap_fails_the_run_saying_why(book):
    record = tasks.echo.paused(book, "z" * 5000)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)  # as a worker
    assert run(str(record.pk)) == TaskStatus.FAILED
    record.refresh_from_db()
    assert record.error.startswith("InvalidResult: tests.testapp.tasks.echo: result takes 5,002")
    assert "BOOGIE_TASKS_MAX_RESULT_SIZE" in record.error and record.result is None


@override_settings(BOOGIE_TASKS_MAX_ERROR_LENGTH=500, BOOGIE_TASKS_MAX_TRACEBACK_LENGTH=800)
def test_errors_tracebacks_and_messages_are_cut_with_a_marker(book, caplog):
    caplog.set_level(logging.INFO, logger="boogie_tasks")
    huge = "e" * 100_000
    with pytest.raises(Exception):  # noqa: B017 - TaskFailed, recorded first
        tasks.echo.call(book, message=huge)
    record = tasks.echo.tasks(book).get()
    assert len(record.error) == 500 and record.error.endswith("more characters cut]")
    assert len(record.progress_message) <= 255
    assert record.progress_message.endswith("more characters cut]")
    with pytest.raises(RuntimeError):
        tasks.explode.call(book, huge)
    exploded = tasks.explode.tasks(book).get()
    assert len(exploded.error) == 500 and len(exploded.traceback) == 800
    assert exploded.traceback.endswith("more characters cut]")
    assert max(len(r.getMessage()) for r in caplog.records) < 10_000  # an excerpt only


def test_a_forged_message_with_a_huge_id_is_dropped_and_logged_briefly(caplog):
    caplog.set_level(logging.INFO, logger="boogie_tasks")
    assert run("9" * 5_000_000) == "DROPPED"
    assert run({"not": "an id"}) == "DROPPED"  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if r.name == "boogie_tasks"]
    assert lines and all(len(line) < 200 for line in lines), [len(x) for x in lines]
