"""boogie_tasks.testing: a project's tests decide when queued records run."""

from __future__ import annotations

import pytest

from boogie_tasks import TaskStatus, task
from boogie_tasks.testing import run_pending
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


@task
def chain(book):
    tasks.describe.delayed(book, " chained")
    return "first"


def test_run_pending_runs_what_is_queued_when_the_test_says(book):
    record = tasks.describe.delayed(book, "!")
    failing = tasks.explode.delayed(book)
    assert record.status == TaskStatus.READY  # a TestCase never commits: nothing left
    done = run_pending()
    assert [r.pk for r in done] == [record.pk, failing.pk]
    record.refresh_from_db()
    failing.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.result["text"] == "Dune!"
    assert failing.status == TaskStatus.FAILED and failing.error == "RuntimeError: boom"
    assert run_pending() == []


def test_run_pending_follows_records_queued_by_runs_and_filters_by_task(book):
    chain.delayed(book)
    paused = tasks.describe.paused(book)
    tasks.explode.delayed(book)
    assert [r.task_name for r in run_pending(chain)] == [chain.name]
    done = run_pending(tasks.describe.name)
    assert [r.result["text"] for r in done] == ["Dune chained"]
    paused.refresh_from_db()
    assert paused.status == TaskStatus.PAUSED  # paused records wait for run() or enqueue()
    with pytest.raises(RuntimeError, match="boom"):
        run_pending(raise_errors=True)


def test_an_unknown_task_fails_its_record_instead_of_looping(book):
    from boogie_tasks.models import TaskRecord

    record = tasks.describe.delayed(book)
    TaskRecord.objects.filter(pk=record.pk).update(task_name="gone.away")
    assert [r.pk for r in run_pending()] == [record.pk]
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.error.startswith("UnknownTask: no task named 'gone.away'")


def test_wait_after_run_pending_returns_the_finished_record(book):
    record = tasks.describe.delayed(book, "!")
    run_pending()
    assert record.wait(timeout=1).status == TaskStatus.SUCCESSFUL
