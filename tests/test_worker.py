"""End to end: records run by a real ``celery worker`` process, on each broker."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import transaction

from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord
from tests.testapp import tasks
from tests.testapp.models import Book, Document, Tag

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_delayed_runs_on_the_worker_for_every_kind_of_pk(worker):
    objects = [
        Book.objects.create(title="Dune"),
        Document.objects.create(id=uuid.uuid4(), name="spec"),
        Tag.objects.create(slug="tag/with spaces"),
    ]
    records = [tasks.describe.delayed(obj, "!") for obj in objects]
    for obj, record in zip(objects, records, strict=True):
        record.wait(timeout=30)
        assert record.status == TaskStatus.SUCCESSFUL, record.error
        assert record.result["pk"] == str(obj.pk)
        assert record.result["text"] == f"{obj}!"
        assert record.attempts == 1
        assert record.worker and record.started_at and record.finished_at
    # The shadow name makes the worker's log show the real task.
    assert "tests.testapp.tasks.describe" in worker.output()


def test_failure_on_the_worker_is_recorded_with_traceback(worker, book):
    record = tasks.explode.delayed(book, "kaput").wait(timeout=30)
    assert record.status == TaskStatus.FAILED
    assert record.error == "RuntimeError: kaput"
    assert "Traceback (most recent call last)" in record.traceback
    assert "raise RuntimeError(message)" in record.traceback

    refused = tasks.refuse.delayed(book).wait(timeout=30)
    assert refused.status == TaskStatus.FAILED
    assert refused.error == "nothing to do for this one"
    assert refused.traceback == ""


def test_progress_is_visible_while_the_worker_runs(worker, book, tmp_path):
    release = tmp_path / "release"
    record = tasks.wait_for_file.delayed(book, str(release))
    seen = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.status == TaskStatus.RUNNING and record.progress_current > 0:
            seen = record.progress_current
            break
        time.sleep(0.05)
    release.touch()
    record.wait(timeout=30)
    assert seen > 0, "no progress write was seen while the task ran"
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.progress_current >= seen


def test_message_leaves_only_after_commit_and_rollback_runs_nothing(worker, book, tmp_path):
    marker = tmp_path / "ran.txt"
    with transaction.atomic():
        record = tasks.describe.delayed(book, marker=str(marker))
        record_id = record.id
        assert record_id is not None
        with pytest.raises(TimeoutError):
            record.wait(timeout=5)  # could never finish inside its own transaction
        time.sleep(1)
        assert not marker.exists(), "the worker ran the task before the commit"
    record.wait(timeout=30)
    assert record.status == TaskStatus.SUCCESSFUL
    assert marker.read_text().splitlines() == [str(book.pk)]

    rolled_back = tmp_path / "rolled_back.txt"
    with pytest.raises(RuntimeError), transaction.atomic():
        gone = tasks.describe.delayed(book, marker=str(rolled_back))
        raise RuntimeError("roll back")
    time.sleep(2)
    assert not TaskRecord.objects.filter(pk=gone.id).exists()
    assert not rolled_back.exists(), "a rolled-back record ran"


def test_object_deleted_before_the_run_fails_clearly(worker):
    doomed = Book.objects.create(title="gone")
    pk = doomed.pk
    with transaction.atomic():
        record = tasks.describe.delayed(doomed)
        doomed.delete()
    record.wait(timeout=30)
    assert record.status == TaskStatus.FAILED
    assert record.error == (
        f"ObjectDeleted: testapp.Book with pk='{pk}' no longer exists "
        "(task tests.testapp.tasks.describe)"
    )


def test_queues_and_task_routes_reach_the_worker(worker, book):
    assert tasks.on_other_queue.delayed(book).wait(timeout=30).result == "other"
    assert tasks.routed.delayed(book).wait(timeout=30).result == "routed"
    assert tasks.renamed.delayed(book).wait(timeout=30).result == "renamed"
    moved = tasks.describe.using(queue="other").delayed(book).wait(timeout=30)
    assert moved.queue == "other" and moved.status == TaskStatus.SUCCESSFUL


def test_paused_record_enqueued_later_runs_once(worker, book, tmp_path):
    marker = tmp_path / "once.txt"
    record = tasks.describe.paused(book, marker=str(marker))
    time.sleep(0.5)
    assert TaskRecord.objects.get(pk=record.pk).status == TaskStatus.PAUSED
    record.enqueue()
    record.wait(timeout=30)
    assert record.status == TaskStatus.SUCCESSFUL
    # A second copy of the same message is acknowledged and dropped.
    from boogie_tasks.publishing import publish

    publish(record)
    time.sleep(1.5)
    record.refresh_from_db()
    assert record.attempts == 1
    assert marker.read_text().splitlines() == [str(book.pk)]


def test_a_run_past_its_soft_time_limit_fails_saying_so(worker, book):
    record = tasks.too_slow.delayed(book).wait(timeout=30)
    assert record.status == TaskStatus.FAILED
    assert record.error == "TimeLimitExceeded: the run went past its time limit of 1 s"


def test_cancel_with_terminate_kills_the_running_process(worker, book, tmp_path, broker):
    if broker[0].startswith("filesystem"):
        pytest.skip("Celery's remote control (revoke) needs a broker with broadcast")
    record = tasks.sleep_until.delayed(book, str(tmp_path / "never"), timeout=60)
    deadline = time.monotonic() + 20
    while TaskRecord.objects.get(pk=record.pk).status != TaskStatus.RUNNING:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    pid = int(TaskRecord.objects.get(pk=record.pk).worker.rsplit(":", 1)[1])
    assert record.cancel(terminate=True) is True
    assert record.status == TaskStatus.CANCELED
    deadline = time.monotonic() + 20
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs the task"
        time.sleep(0.1)
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
