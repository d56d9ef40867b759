"""Scheduled runs and the dispatcher's sweeps, driven directly."""

from __future__ import annotations

import datetime
import threading
import zoneinfo

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from boogie_tasks import TaskStatus
from boogie_tasks.dispatch import dispatch
from boogie_tasks.exceptions import InvalidTaskArguments
from boogie_tasks.models import TaskRecord
from boogie_tasks.runner import execute
from boogie_tasks.scheduling import DISPATCHER_NAME, ensure_dispatcher, resolve_when
from tests.helpers import claim
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def test_when_as_seconds_timedelta_or_datetime():
    now = timezone.now()
    assert abs((resolve_when("t", 60) - now).total_seconds() - 60) < 1
    assert abs((resolve_when("t", 1.5) - now).total_seconds() - 1.5) < 1
    assert abs((resolve_when("t", datetime.timedelta(hours=1)) - now).total_seconds() - 3600) < 1
    aware = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    assert resolve_when("t", aware) == aware
    with timezone.override(zoneinfo.ZoneInfo("America/Sao_Paulo")):
        naive = resolve_when("t", datetime.datetime(2030, 1, 1, 12))
    assert naive == datetime.datetime(2030, 1, 1, 15, tzinfo=datetime.timezone.utc)
    for bad in ("soon", True, float("nan"), None):
        with pytest.raises(InvalidTaskArguments, match="t: when must be"):
            resolve_when("t", bad)


def test_schedule_records_scheduled_and_checks_arguments(book):
    record = tasks.describe.schedule(30, book, "!")
    assert record.status == TaskStatus.SCHEDULED
    assert record.run_at > timezone.now() + datetime.timedelta(seconds=25)
    with pytest.raises(TypeError, match="tests.testapp.tasks.describe: when must be"):
        tasks.describe.schedule("later", book)
    with pytest.raises(TypeError, match="argument 'suffix'"):
        tasks.describe.schedule(5, book, object())
    assert TaskRecord.objects.count() == 1


def test_dispatch_starts_due_records_only(book, django_capture_on_commit_callbacks):
    due = tasks.describe.schedule(-1, book)
    later = tasks.describe.schedule(60, book)
    assert dispatch()["due"] == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert due.status == TaskStatus.READY and due.queued_at is not None
    assert later.status == TaskStatus.SCHEDULED
    assert dispatch()["due"] == 0


def test_cancelled_scheduled_record_never_runs(book):
    record = tasks.describe.schedule(-1, book)
    assert record.cancel() is True
    assert dispatch()["due"] == 0
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED


@override_settings(BOOGIE_TASKS_REPUBLISH_AFTER=30)
def test_dispatch_publishes_ready_records_again_when_unpublished_or_unclaimed(book):
    fresh = tasks.describe.delayed(book)
    failed_publish = tasks.describe.delayed(book)
    TaskRecord.objects.filter(pk=failed_publish.pk).update(queued_at=None)
    old = tasks.describe.delayed(book)
    long_ago = timezone.now() - datetime.timedelta(seconds=31)
    TaskRecord.objects.filter(pk=old.pk).update(queued_at=long_ago)
    assert dispatch()["republished"] == 2
    assert dispatch()["republished"] == 0  # queued_at moved on: not every tick
    fresh.refresh_from_db()
    old.refresh_from_db()
    assert old.queued_at > long_ago and fresh.status == TaskStatus.READY


@override_settings(BOOGIE_TASKS_STALE_AFTER=60)
def test_dispatch_fails_runs_whose_worker_was_lost(book):
    record = tasks.describe.paused(book)
    running = claim(record.pk)
    alive = claim(tasks.describe.paused(book).pk)
    TaskRecord.objects.filter(pk=running.pk).update(
        heartbeat_at=timezone.now() - datetime.timedelta(seconds=61)
    )
    assert dispatch()["lost"] == 1
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED and record.finished_at
    assert record.error.startswith("WorkerLost: the worker running this record stopped")
    alive.refresh_from_db()
    assert alive.status == TaskStatus.RUNNING


def test_migrate_creates_one_dispatcher_entry():
    entry = PeriodicTask.objects.get(name=DISPATCHER_NAME)
    assert entry.task == "boogie_tasks.dispatch"
    assert entry.interval.every == 1 and entry.expire_seconds == 2
    entry.enabled = False
    entry.save()
    ensure_dispatcher()
    assert PeriodicTask.objects.filter(name=DISPATCHER_NAME).count() == 1
    assert PeriodicTask.objects.get(name=DISPATCHER_NAME).enabled is False


@pytest.mark.django_db(transaction=True)
@override_settings(BOOGIE_TASKS_HEARTBEAT_INTERVAL=0.2)
def test_a_quiet_run_keeps_its_heartbeat(book, tmp_path):
    release = tmp_path / "release"
    record = tasks.sleep_until.paused(book, str(release))
    claimed = claim(record.pk)
    first_beat = claimed.heartbeat_at
    threading.Timer(1.0, release.touch).start()
    execute(claimed)  # the body reports no progress at all
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.result == "woke"
    assert record.heartbeat_at > first_beat + datetime.timedelta(seconds=0.3)


def test_when_too_far_or_without_time_zones():
    with pytest.raises(InvalidTaskArguments, match="too far away"):
        resolve_when("t", 1e20)
    with override_settings(USE_TZ=False):
        naive = datetime.datetime(2030, 1, 1, 12)
        assert resolve_when("t", naive) == naive
        aware = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone.utc)
        assert timezone.is_naive(resolve_when("t", aware))


def test_changing_the_interval_updates_the_entry():
    with override_settings(BOOGIE_TASKS_DISPATCH_INTERVAL=5):
        entry = ensure_dispatcher()
    assert (entry.interval.every, entry.expire_seconds) == (5, 10)
    entry = ensure_dispatcher()
    assert (entry.interval.every, entry.expire_seconds) == (1, 2)


@override_settings(BOOGIE_TASKS_STALE_AFTER=60)
def test_a_lost_run_asked_to_stop_ends_canceled(book):
    record = tasks.describe.paused(book)
    claim(record.pk)
    record.cancel()
    stale = timezone.now() - datetime.timedelta(seconds=61)
    TaskRecord.objects.filter(pk=record.pk).update(heartbeat_at=stale, max_attempts=3)
    assert dispatch()["lost"] == 1
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED


@override_settings(BOOGIE_TASKS_REPUBLISH_AFTER=30)
def test_a_long_queue_is_not_published_again(book):
    long_ago = timezone.now() - datetime.timedelta(seconds=31)
    waiting = tasks.describe.delayed(book)
    TaskRecord.objects.filter(pk=waiting.pk).update(queued_at=long_ago)
    started = tasks.describe.paused(book)
    claim(started.pk)  # workers are starting this task's runs
    other = tasks.count_pages.delayed(book)  # no run of count_pages started: lost
    TaskRecord.objects.filter(pk=other.pk).update(queued_at=long_ago)
    assert dispatch()["republished"] == 1
    waiting.refresh_from_db()
    other.refresh_from_db()
    assert waiting.queued_at == long_ago and other.queued_at > long_ago


@override_settings(BOOGIE_TASKS_REPUBLISH_AFTER=30)
def test_a_record_overtaken_in_a_busy_queue_is_published_again(book):
    """After an outage: its message is gone if one queued after it has started."""
    now = timezone.now()
    first, later, still = (tasks.describe.delayed(book) for _ in range(3))
    for record, ago in ((first, 40), (later, 35), (still, 31)):
        TaskRecord.objects.filter(pk=record.pk).update(
            queued_at=now - datetime.timedelta(seconds=ago)
        )
    claim(later.pk, waiting=False)  # a worker took the later message: first's is lost
    assert dispatch()["republished"] == 1
    first.refresh_from_db()
    still.refresh_from_db()
    assert first.queued_at > now  # published again
    assert still.queued_at < now  # queued after the one that started: still in line


def test_quiet_ticks_drops_only_celerys_info_lines_about_the_dispatcher():
    import logging

    from boogie_tasks.scheduling import QuietTicks

    def record(name, level, message, args, data=None):
        made = logging.LogRecord(name, level, __file__, 1, message, args, None)
        if data is not None:
            made.data = data
        return made

    quiet = QuietTicks()
    tick = {"name": "boogie_tasks.dispatch", "id": "1"}
    assert not quiet.filter(record("celery.app.trace", logging.INFO, "%(name)s", (tick,), tick))
    sent = ("boogie_tasks.dispatch", "boogie_tasks.dispatch")
    assert not quiet.filter(record("celery.beat", logging.INFO, "Sending %s (%s)", sent))
    user = {"name": "myapp.tasks.build", "id": "2"}
    assert quiet.filter(record("celery.app.trace", logging.INFO, "%(name)s", (user,), user))
    assert quiet.filter(record("celery.app.trace", logging.ERROR, "%(name)s", (tick,), tick))
    assert all(
        any(isinstance(f, QuietTicks) for f in logging.getLogger(name).filters)
        for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")
    )  # installed by the app's ready()
