"""Operations on many records: select, retry, clean in batches, stats."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boogie_tasks import operations
from boogie_tasks.exceptions import InvalidState, UnknownTask
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus
from tests.testapp import tasks
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def _age(record: TaskRecord, days: float) -> TaskRecord:
    """Pretend the record was made ``days`` ago."""
    when = timezone.now() - datetime.timedelta(days=days)
    TaskRecord.objects.filter(pk=record.pk).update(created_at=when)
    record.refresh_from_db()
    return record


def _finished(task, obj, days: float = 0, *args) -> TaskRecord:
    task.call(obj, *args)
    return _age(task.tasks(obj).first(), days)


def _timed(record: TaskRecord, seconds: float) -> None:
    start = timezone.now() - datetime.timedelta(hours=1)
    TaskRecord.objects.filter(pk=record.pk).update(
        started_at=start, finished_at=start + datetime.timedelta(seconds=seconds)
    )


# select


def test_select_filters_by_task_status_object_and_age(book):
    other = Book.objects.create(title="Emma")
    old = _finished(tasks.describe, book, 40)
    new_paused = tasks.describe.paused(other)
    tasks.count_pages.paused(book)

    assert set(operations.select(task=tasks.describe.name)) == {old, new_paused}
    assert list(operations.select(statuses=[TaskStatus.SUCCESSFUL])) == [old]
    assert operations.select(obj=other).get() == new_paused
    by_pair = operations.select(obj=(ContentType.objects.get_for_model(Book), str(other.pk)))
    assert by_pair.get() == new_paused
    assert list(operations.select(older_than=datetime.timedelta(days=30))) == [old]
    assert operations.select(task="no.such.task").count() == 0


# retry


def test_retry_makes_a_ready_copy_and_publishes_after_commit(
    book, django_capture_on_commit_callbacks
):
    owner = User.objects.create_user("ann")
    with pytest.raises(RuntimeError):
        tasks.explode.using(queue="other", priority=3, owner=owner).call(book, "again")
    failed = tasks.explode.tasks(book).get()

    with django_capture_on_commit_callbacks() as callbacks:
        new = operations.retry(failed)
    assert len(callbacks) == 1

    new.refresh_from_db()
    assert new.pk != failed.pk and new.status == TaskStatus.READY
    assert new.queued_at is not None and new.attempts == 0
    assert new.error == "" and new.traceback == "" and new.result is None
    for field in ("task_name", "content_type_id", "object_id", "args", "kwargs", "owner_id"):
        assert getattr(new, field) == getattr(failed, field), field
    assert (new.queue, new.priority, new.max_attempts) == ("other", 3, failed.max_attempts)
    assert new.args == ["again"] and new.owner == owner
    failed.refresh_from_db()
    assert failed.status == TaskStatus.FAILED  # the original is left as it was


def test_retry_keeps_the_number_of_attempts_allowed(book):
    record = tasks.flaky.paused(book, "/nonexistent/marker")
    record.cancel()
    assert operations.retry(record).max_attempts == 3


def test_retry_refuses_an_unfinished_record(book, django_capture_on_commit_callbacks):
    paused = tasks.describe.paused(book)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(InvalidState, match="is PAUSED; only a finished"):
            operations.retry(paused)
    assert callbacks == [] and TaskRecord.objects.count() == 1


def test_retry_refuses_an_unknown_task(book):
    record = TaskRecord.objects.create(
        task_name="gone.tasks.removed",
        status=TaskStatus.FAILED,
        content_type=ContentType.objects.get_for_model(book),
        object_id=str(book.pk),
    )
    with pytest.raises(UnknownTask, match="'gone.tasks.removed'"):
        operations.retry(record)
    assert TaskRecord.objects.count() == 1


def test_retry_of_a_unique_task_with_an_unfinished_twin_is_refused(book):
    done = tasks.only_one.paused(book)
    done.cancel()
    active = tasks.only_one.paused(book)
    assert active.pk != done.pk
    with pytest.raises(InvalidState, match=f"record {active.pk} of the same call"):
        operations.retry(done)
    assert TaskRecord.objects.count() == 2
    active.cancel()
    assert operations.retry(done).status == TaskStatus.READY


# clean


def test_clean_deletes_only_finished_records_older_than_the_age(book):
    old = _finished(tasks.describe, book, 40)
    recent = _finished(tasks.describe, book, 1)
    old_paused = _age(tasks.describe.paused(book), 40)

    removed = operations.clean(older_than=datetime.timedelta(days=30))

    assert removed == {tasks.describe.name: 1}
    assert set(TaskRecord.objects.all()) == {recent, old_paused}
    assert not TaskRecord.objects.filter(pk=old.pk).exists()


def test_clean_all_deletes_unfinished_records_too(book):
    _age(tasks.describe.paused(book), 40)
    assert operations.clean(finished=False) == {tasks.describe.name: 1}
    assert TaskRecord.objects.count() == 0


def test_clean_keep_last_keeps_the_newest_of_each_object_per_task(book):
    other = Book.objects.create(title="Emma")
    for days in (50, 45, 40):
        _finished(tasks.describe, book, days)
    newest_book = TaskRecord.objects.for_task(tasks.describe.name).newest_first().first()
    only_other = _finished(tasks.describe, other, 60)
    only_count = _finished(tasks.count_pages, book, 60)

    removed = operations.clean(older_than=datetime.timedelta(days=30), keep_last=True)

    assert removed == {tasks.describe.name: 2}
    assert set(TaskRecord.objects.all()) == {newest_book, only_other, only_count}


def test_clean_keep_last_keeps_an_old_last_run_when_a_newer_one_is_unfinished(book):
    _finished(tasks.describe, book, 50)
    last_finished = _finished(tasks.describe, book, 40)
    running = tasks.describe.paused(book)  # unfinished: never considered, never deleted
    operations.clean(older_than=datetime.timedelta(days=30), keep_last=True)
    assert set(TaskRecord.objects.all()) == {last_finished, running}


def test_clean_reads_and_deletes_in_batches_by_primary_key(book):
    for _ in range(5):
        tasks.describe.call(book)
    tasks.count_pages.call(book)

    with CaptureQueriesContext(connection) as queries:
        removed = operations.clean(batch_size=2)

    assert removed == {tasks.count_pages.name: 1, tasks.describe.name: 5}
    assert TaskRecord.objects.count() == 0
    sql = [q["sql"].upper() for q in queries.captured_queries]
    selects = [s for s in sql if s.startswith("SELECT")]
    deletes = [s for s in sql if s.startswith("DELETE")]
    assert len(selects) == 4  # 2 + 2 + 2 rows, then an empty batch ends it
    assert all("LIMIT 2" in s and "OFFSET" not in s for s in selects)
    assert len(deletes) == 4  # one per task in each batch: count_pages shares the last one


def test_clean_of_a_queryset_and_dry_run(book):
    other = Book.objects.create(title="Emma")
    _finished(tasks.describe, book)
    _finished(tasks.describe, other)

    chosen = operations.select(obj=other)
    assert operations.clean(chosen, dry_run=True) == {tasks.describe.name: 1}
    assert TaskRecord.objects.count() == 2
    assert operations.clean(chosen) == {tasks.describe.name: 1}
    assert TaskRecord.objects.get().object_id == str(book.pk)
    assert operations.clean(chosen) == {}


def test_clean_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size must be at least 1, not 0"):
        operations.clean(batch_size=0)


# stats


def test_stats_counts_per_task_and_status_and_percentiles(book):
    for seconds in range(1, 11):  # 1 to 10 seconds
        tasks.describe.call(book)
        _timed(tasks.describe.tasks(book).first(), seconds)
    with pytest.raises(RuntimeError):
        tasks.explode.call(book)
    tasks.describe.paused(book)

    rows = {row.task_name: row for row in operations.stats()}

    describe = rows[tasks.describe.name]
    assert describe.counts == {"PAUSED": 1, "SUCCESSFUL": 10}
    assert describe.total == 11 and describe.runs == 10
    assert (describe.p50, describe.p90, describe.p99) == (5.0, 9.0, 10.0)
    explode = rows[tasks.explode.name]
    assert explode.counts == {"FAILED": 1} and explode.runs == 0 and explode.p50 is None
    assert list(rows) == sorted(rows)


def test_stats_uses_only_the_last_runs_and_the_given_records(book):
    start = timezone.now() - datetime.timedelta(hours=1)
    for index, seconds in enumerate((100, 1, 2, 3)):  # the 100 s run finished first
        tasks.describe.call(book)
        began = start + datetime.timedelta(minutes=10 * index)
        TaskRecord.objects.filter(pk=tasks.describe.tasks(book).first().pk).update(
            started_at=began, finished_at=began + datetime.timedelta(seconds=seconds)
        )
    (row,) = operations.stats(last=3)
    assert row.runs == 3 and row.total == 4 and row.p99 == 3.0
    (row,) = operations.stats()
    assert row.runs == 4 and row.p99 == 100.0
    assert operations.stats(operations.select(task="no.such.task")) == []
    with pytest.raises(ValueError, match="last must be at least 1"):
        operations.stats(last=0)


def test_percentile_is_nearest_rank():
    assert operations.percentile([], 50) is None
    assert operations.percentile([4.0], 99) == 4.0
    values = [float(n) for n in range(1, 101)]
    assert [operations.percentile(values, p) for p in (50, 90, 99)] == [50.0, 90.0, 99.0]
