"""End to end: a real ``celery beat`` drives the dispatcher on a real worker."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord
from tests.testapp import tasks

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_scheduled_runs_start_on_time(beat, book):
    records = [tasks.describe.schedule(2 + i * 0.3, book, str(i)) for i in range(4)]
    for record in records:
        record.wait(timeout=30)
        assert record.status == TaskStatus.SUCCESSFUL, record.error
        late = (record.started_at - record.run_at).total_seconds()
        assert 0 <= late < 1.5, f"started {late:.2f} s after run_at"


def test_a_cancelled_schedule_never_runs(beat, book, tmp_path):
    marker = tmp_path / "ran"
    record = tasks.describe.schedule(1, book, marker=str(marker))
    assert record.cancel()
    kept = tasks.describe.schedule(1, book)
    kept.wait(timeout=30)
    time.sleep(1)
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED and not marker.exists()


def test_a_ready_record_that_was_never_published_still_runs(beat, book):
    record = tasks.describe.paused(book, "!")
    # As after a broker failure: READY, marked never published, no message anywhere.
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY, queued_at=None)
    record.wait(timeout=30)
    assert record.status == TaskStatus.SUCCESSFUL and record.result["text"] == "Dune!"
    assert record.queued_at is None or record.queued_at <= timezone.now()


def _let_beat_see_the_next_change() -> None:
    """Give beat a change timestamp to compare the next one with.

    The flush after the previous test deleted django-celery-beat's change row
    (``PeriodicTasks``). A beat that polled while it was missing keeps no
    timestamp, and then takes the first change after it for no change
    (``DatabaseScheduler.schedule_changed``: ``ts > (last or ts)``), so an
    entry created next would not be seen until something else changed. Only
    a test's flush deletes that row.
    """
    from django_celery_beat.models import PeriodicTasks

    PeriodicTasks.update_changed()
    time.sleep(2.5)  # beat polls for changes at least every second here


def test_every_fires_on_beat_and_each_firing_is_a_record(beat, book):
    import datetime

    _let_beat_see_the_next_change()
    entry = tasks.describe.every(datetime.timedelta(seconds=1), book, "tick")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if tasks.describe.results(book).count() >= 2:
            break
        time.sleep(0.2)
    entry.delete()  # how a user stops it
    results = list(tasks.describe.results(book))
    assert len(results) >= 2 and results[0]["text"] == "Dune" + "tick"


def test_the_ticks_do_not_fill_the_logs(beat, worker, book):
    """Two lines a second of Celery's about the dispatcher would drown a project's own."""
    kept = tasks.describe.schedule(1, book)
    kept.wait(timeout=30)  # beat ticked, and the worker ran the ticks
    time.sleep(2)
    assert "boogie_tasks.dispatch[" not in worker.output()
    assert "Sending due task boogie_tasks.dispatch" not in beat.output()
    assert "tests.testapp.tasks.describe" in worker.output()  # the user's own lines stay
