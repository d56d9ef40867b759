"""Retries, unique and cache_for, driven directly (the worker tests run them for real)."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from boogie_tasks import TaskStatus, task
from boogie_tasks.dispatch import dispatch
from boogie_tasks.exceptions import InvalidTask
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import run
from boogie_tasks.testing import run_pending
from tests.helpers import claim
from tests.testapp import tasks
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def _drive(record):
    """Run what the worker would, until the record is final."""
    for _ in range(10):
        run_pending()
        record.refresh_from_db()
        if record.is_finished:
            return record
    raise AssertionError(f"record still {record.status}")


def test_retries_until_success_keeping_each_error(book, tmp_path):
    marker = tmp_path / "tries"
    record = tasks.flaky.delayed(book, str(marker))
    assert record.max_attempts == 3
    run(str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.SCHEDULED and record.attempts == 1
    assert record.error == "ConnectionError: attempt 1 failed"
    _drive(record)
    assert record.status == TaskStatus.SUCCESSFUL and record.result == 3
    assert record.attempts == 3
    # Every attempt is in the history: when, where, how it ended and, failed, why.
    assert [entry.get("error") for entry in record.history] == [
        "ConnectionError: attempt 1 failed",
        "ConnectionError: attempt 2 failed",
        None,
    ]
    assert [entry["status"] for entry in record.history] == ["FAILED", "FAILED", "SUCCESSFUL"]
    assert [entry["attempt"] for entry in record.history] == [1, 2, 3]
    first = record.history[0]
    assert first["exception_class"] == "builtins.ConnectionError"
    assert "Traceback" in first["traceback"] and "attempt 1 failed" in first["traceback"]
    assert first["worker"] and first["started_at"] <= first["finished_at"]


def test_retries_run_out(book, tmp_path):
    record = tasks.flaky.delayed(book, str(tmp_path / "tries"), succeed_on=99)
    _drive(record)
    assert record.status == TaskStatus.FAILED and record.attempts == 3
    assert record.error == "ConnectionError: attempt 3 failed"
    assert [entry["error"] for entry in record.history] == [
        f"ConnectionError: attempt {n} failed" for n in (1, 2, 3)
    ]


def test_only_retry_on_exceptions_are_retried_and_task_failed_never(book):
    record = tasks.picky.delayed(book)
    run(str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED and record.attempts == 1


def test_call_never_retries(book, tmp_path):
    with pytest.raises(ConnectionError):
        tasks.flaky.call(book, str(tmp_path / "tries"))
    assert tasks.flaky.tasks(book).get().status == TaskStatus.FAILED

    record = tasks.flaky.using().paused(book, str(tmp_path / "x"))
    assert record.max_attempts == 3


@override_settings(BOOGIE_TASKS_STALE_AFTER=60)
def test_a_lost_worker_is_retried_while_attempts_remain(book, tmp_path):
    record = tasks.flaky.delayed(book, str(tmp_path / "tries"), succeed_on=1)
    claim(record.pk)
    stale = timezone.now() - datetime.timedelta(seconds=61)
    TaskRecord.objects.filter(pk=record.pk).update(heartbeat_at=stale)
    assert dispatch()["lost"] == 1
    record.refresh_from_db()
    assert record.status == TaskStatus.SCHEDULED
    assert record.history[0]["error"].startswith("WorkerLost:")
    assert record.history[0]["exception_class"] == "boogie_tasks.exceptions.WorkerLost"
    _drive(record)
    assert record.status == TaskStatus.SUCCESSFUL and record.attempts == 2


def test_unique_returns_the_unfinished_record(book, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = tasks.only_one.delayed(book, "a")
        second = tasks.only_one.delayed(book, "b")
        third = tasks.only_one.paused(book)
    assert first.pk == second.pk == third.pk
    assert len(callbacks) == 1  # published once
    other = tasks.only_one.delayed(Book.objects.create(title="x"))
    assert other.pk != first.pk
    run_pending()
    again = tasks.only_one.delayed(book, "c")
    assert again.pk != first.pk  # the first one finished: a new run


def test_unique_inside_a_transaction_keeps_it_usable(book):
    with transaction.atomic():
        first = tasks.only_one.paused(book)
        assert tasks.only_one.paused(book).pk == first.pk
        assert TaskRecord.objects.count() == 1


def test_unique_by_args(book):
    a = tasks.one_per_args.paused(book, "a")
    assert tasks.one_per_args.paused(book, note="a").pk == a.pk  # the same call, by name
    assert tasks.one_per_args.paused(book, "a").pk == a.pk
    assert tasks.one_per_args.paused(book, "b").pk != a.pk


def test_cache_for_returns_a_recent_success(book):
    first = tasks.cached.delayed(book, 1)
    run_pending()
    first.refresh_from_db()
    assert tasks.cached.delayed(book, 1).pk == first.pk
    assert tasks.cached.delayed(book, 2).pk != first.pk
    TaskRecord.objects.filter(pk=first.pk).update(
        finished_at=timezone.now() - datetime.timedelta(seconds=61)
    )
    assert tasks.cached.delayed(book, 1).pk != first.pk


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"retries": -1}, "retries must be"),
        ({"retry_backoff": "soon"}, "retry_backoff must be"),
        ({"retry_on": ValueError}, "retry_on must be a tuple"),
        ({"unique": "yes"}, "unique must be"),
        ({"cache_for": -5}, "cache_for must be"),
    ],
)
def test_bad_guarantee_options(options, match):
    from tests.test_task import _module_level

    with pytest.raises(InvalidTask, match=match):
        task(name="tests.bad", **options)(_module_level)


CALLER = """
import os, sys
import django
django.setup()
import tests.celery_app  # the project's Celery app, as a project's __init__ imports it
from tests.testapp.models import Book
from tests.testapp import tasks
book = Book.objects.get(pk=int(sys.argv[1]))
print(tasks.only_one.delayed(book).pk)
"""


@pytest.mark.django_db(transaction=True)
def test_unique_holds_for_callers_in_several_processes(book):
    import os
    import subprocess
    import sys

    from tests.servers import ROOT

    env = {**os.environ, "BOOGIE_TEST_WORKER": "1", "PYTHONPATH": str(ROOT)}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    callers = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, str(book.pk)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(4)
    ]
    outputs = [caller.communicate(timeout=60) for caller in callers]
    ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert all(caller.returncode == 0 for caller in callers), outputs
    assert len(ids) == 1, (outputs, list(TaskRecord.objects.values("status", "unique_key")))
    assert TaskRecord.objects.get().pk == tasks.only_one.tasks(book).get().pk


def test_a_retried_attempt_starts_its_progress_afresh(book, tmp_path):
    record = tasks.flaky.delayed(book, str(tmp_path / "tries"))
    TaskRecord.objects.filter(pk=record.pk).update(progress_current=7, progress_total=9)
    run(str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.SCHEDULED
    assert (record.progress_current, record.progress_total) == (0, None)


def test_the_arguments_hash_is_by_parameter_name(book):
    positional = tasks.describe.paused(book, "x")
    keyword = tasks.describe.paused(book, suffix="x")
    assert positional.args == ["x"] and keyword.kwargs == {"suffix": "x"}  # stored as given
    assert positional.args_hash == keyword.args_hash
    assert tasks.describe.paused(book, "y").args_hash != positional.args_hash
    # Defaults are not filled in: no argument is another call than the default given.
    assert tasks.describe.paused(book).args_hash != tasks.describe.paused(book, "").args_hash
