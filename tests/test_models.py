"""TaskRecord: ids, reading progress, waiting."""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from boogie_tasks import TaskStatus
from boogie_tasks.ids import uuid7
from boogie_tasks.models import TaskRecord
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def test_uuid7_is_version_7_and_strictly_increasing():
    ids = [uuid7() for _ in range(5000)]
    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    millis = ids[0].int >> 80
    assert abs(millis - time.time() * 1000) < 5000


def test_records_sort_newest_first_by_creation(book):
    first = tasks.describe.paused(book)
    second = tasks.describe.paused(book)
    assert first.id < second.id
    assert list(TaskRecord.objects.all()) == [second, first]


def _record(**fields):
    record = TaskRecord(task_name="t", status=TaskStatus.RUNNING)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_progress_percent():
    assert _record(progress_current=5).progress_percent is None
    assert _record(progress_current=5, progress_total=0).progress_percent is None
    assert _record(progress_current=1, progress_total=4).progress_percent == 25.0
    assert _record(progress_current=9, progress_total=4).progress_percent == 100.0
    assert _record(status=TaskStatus.SUCCESSFUL).progress_percent == 100.0


def test_eta_from_the_observed_rate():
    now = timezone.now()
    started = now - datetime.timedelta(seconds=10)
    running = _record(progress_current=25, progress_total=100, started_at=started, heartbeat_at=now)
    assert running.eta_seconds == pytest.approx(30, abs=0.5)
    assert _record(progress_current=0, progress_total=100, started_at=started).eta_seconds is None
    assert _record(progress_current=5, started_at=started, heartbeat_at=now).eta_seconds is None
    assert _record(status=TaskStatus.SUCCESSFUL).eta_seconds == 0
    assert _record(status=TaskStatus.FAILED).eta_seconds is None


def test_is_finished():
    assert [s for s in TaskStatus if _record(status=s).is_finished] == [
        TaskStatus.SUCCESSFUL,
        TaskStatus.FAILED,
        TaskStatus.CANCELED,
    ]


def test_wait_times_out_on_a_record_nobody_runs(book):
    record = tasks.describe.paused(book)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still PAUSED after 0.3 s"):
        record.wait(timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2


def test_wait_returns_a_final_record_at_once(book):
    tasks.describe.call(book)
    record = tasks.describe.tasks(book).get()
    assert record.wait(timeout=0).status == TaskStatus.SUCCESSFUL


def test_wait_inside_the_creating_transaction_fails_at_once(book):
    with transaction.atomic():
        record = tasks.describe.delayed(book)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="created in the current transaction"):
            record.wait(timeout=30)
        assert time.monotonic() - started < 1


def test_generic_relation_and_str(book):
    record = tasks.describe.paused(book)
    assert record.obj == book
    assert str(record) == f"tests.testapp.tasks.describe [PAUSED] {record.id}"
    assert TaskRecord.objects.for_object(book).paused().get() == record
