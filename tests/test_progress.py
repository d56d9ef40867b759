"""Progress writes from inside a task: throttled, fenced, folded into the finish."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from boogie_tasks import TaskStatus, progress, task
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import execute
from tests.helpers import claim, sent

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[tuple[int, int | None, str]] = []


def _snapshot(record_id):
    if record_id is None:
        return
    row = TaskRecord.objects.values_list(
        "progress_current", "progress_total", "progress_message"
    ).get(pk=record_id)
    SEEN.append(row)


@task
def stepwise(obj, steps, record_id):
    for _ in progress(range(steps), message="stepping"):
        _snapshot(record_id)
    return steps


@task
def generated(obj, steps):
    for _ in progress(x for x in range(steps)):
        pass
    progress.set(steps, steps * 2, "half way")
    progress.advance(steps)
    return "done"


@task
def slow_loop(obj):
    for _ in progress(range(40)):
        time.sleep(0.01)


def _run(fn, book, *args):
    record = fn.paused(book, *args)
    claimed = claim(record.pk)
    with CaptureQueriesContext(connection) as queries:
        execute(claimed, obj=book)
    record.refresh_from_db()
    writes = [sql for sql in sent(queries) if sql.startswith("UPDATE")]
    return record, writes


@override_settings(BOOGIE_TASKS_PROGRESS_INTERVAL=0)
def test_every_step_is_written_without_throttle(book):
    SEEN.clear()
    record = stepwise.paused(book, 3, None)
    TaskRecord.objects.filter(pk=record.pk).update(args=[3, str(record.pk)])
    claimed = claim(record.pk)
    execute(claimed, obj=book)
    # Each snapshot is taken inside the body, before the item's advance.
    assert SEEN == [(0, 3, "stepping"), (1, 3, "stepping"), (2, 3, "stepping")]
    record.refresh_from_db()
    assert (record.progress_current, record.progress_total) == (3, 3)
    assert record.progress_percent == 100.0


def test_throttled_writes_fold_into_the_finish(book):
    # Default interval in the tests is 0.2 s: a quick loop writes its start (with
    # the total), then nothing until the finishing UPDATE carries the last values.
    record, writes = _run(stepwise, book, 1000, None)
    assert len(writes) == 2, writes
    assert all("progress_current" in write for write in writes)
    assert (record.status, record.progress_current, record.progress_total) == (
        TaskStatus.SUCCESSFUL,
        1000,
        1000,
    )
    assert record.progress_message == "stepping"


def test_generators_have_no_total_until_set(book):
    record, _ = _run(generated, book, 4)
    assert record.status == TaskStatus.SUCCESSFUL
    assert (record.progress_current, record.progress_total) == (8, 8)
    assert record.progress_message == "half way"


@override_settings(BOOGIE_TASKS_PROGRESS_INTERVAL=0.05)
def test_writes_are_limited_by_time(book):
    started = time.monotonic()
    record, writes = _run(slow_loop, book)
    elapsed = time.monotonic() - started
    # 0.4 s of work (longer on a busy machine) at one write per 0.05 s, plus the
    # first report and the finish: about 10, never one per item.
    assert 3 <= len(writes) <= elapsed / 0.05 + 2, (len(writes), elapsed)
    assert len(writes) < 40
    assert record.progress_current == 40


@task
def two_loops(obj):
    for _ in progress(range(3), message="first"):
        pass
    for _ in progress(range(5), message="second"):
        pass


def test_each_loop_starts_again_from_zero(book):
    record, _ = _run(two_loops, book)
    assert (record.progress_current, record.progress_total) == (5, 5)
    assert record.progress_message == "second"


@task
def long_loop(obj, record_id):
    for _ in progress(range(3)):
        _snapshot(record_id)


def test_the_total_is_written_at_the_first_report(book):
    SEEN.clear()
    record = long_loop.paused(book, None)
    TaskRecord.objects.filter(pk=record.pk).update(args=[str(record.pk)])
    execute(claim(record.pk), obj=book)
    # The default interval is 0.2 s: the start is written, the rest folds into the finish.
    assert SEEN == [(0, 3, ""), (0, 3, ""), (0, 3, "")]
