"""Recurring runs: fn.every(), fn.periodic() and the spawn task."""

from __future__ import annotations

import datetime
import json

import pytest
from celery.schedules import crontab
from django_celery_beat.models import PeriodicTask

from boogie_tasks import TaskStatus
from boogie_tasks.exceptions import InvalidTaskArguments
from boogie_tasks.runner import spawn
from tests.testapp import tasks
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def test_every_keeps_one_entry_per_object_arguments_and_schedule(book):
    hourly = tasks.describe.every("0 * * * *", book, "!")
    assert tasks.describe.every("0 * * * *", book, "!") == hourly
    assert hourly.task == "boogie_tasks.spawn" and hourly.crontab.minute == "0"
    minutely = tasks.describe.every(datetime.timedelta(minutes=1), book, "!")
    assert minutely != hourly and minutely.interval.every == 60
    other_args = tasks.describe.every("0 * * * *", book, "?")
    celery_cron = tasks.describe.every(crontab(minute="*/5"), book, "!")
    assert celery_cron.crontab.minute == "*/5"
    other = tasks.describe.every("0 * * * *", Book.objects.create(title="x"))
    assert set(tasks.describe.periodic(book)) == {hourly, minutely, other_args, celery_cron}
    assert set(tasks.describe.periodic()) == {hourly, minutely, other_args, celery_cron, other}
    assert tasks.count_pages.periodic().count() == 0


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ("every minute", "a cron string has 5 fields"),
        ("99 * * * *", "bad cron schedule"),
        (datetime.timedelta(seconds=0.5), r"an every\(\) interval must be a whole number"),
        (60, "schedule must be a cron string, a timedelta or a Celery crontab"),
    ],
)
def test_bad_schedules_name_the_task_and_write_nothing(book, schedule, match):
    with pytest.raises(InvalidTaskArguments, match=f"tests.testapp.tasks.describe: {match}"):
        tasks.describe.every(schedule, book)
    assert not PeriodicTask.objects.filter(task="boogie_tasks.spawn").exists()


def test_bad_arguments_are_refused_before_any_entry(book):
    with pytest.raises(TypeError, match="argument 'suffix'"):
        tasks.describe.every("* * * * *", book, object())
    assert not PeriodicTask.objects.filter(task="boogie_tasks.spawn").exists()


def test_each_firing_creates_a_new_ready_record(book):
    entry = tasks.describe.every("* * * * *", book, "!")
    kwargs = json.loads(entry.kwargs)
    first = spawn(**kwargs)
    second = spawn(**kwargs)
    assert first != second
    records = list(tasks.describe.tasks(book))
    assert [str(r.pk) for r in records] == [second, first]
    assert all(r.status == TaskStatus.READY and r.args == ["!"] for r in records)


def test_a_unique_task_skips_a_firing_while_the_last_one_runs(book):
    entry = tasks.only_one.every("* * * * *", book)
    kwargs = json.loads(entry.kwargs)
    assert spawn(**kwargs) == spawn(**kwargs)


def test_a_using_copy_keeps_its_options_in_the_entry(book, django_user_model):
    alice = django_user_model.objects.create(username="alice")
    entry = tasks.describe.using(queue="other", priority=4, owner=alice).every(
        "* * * * *", book, "!"
    )
    record = tasks.describe.tasks(book).get(pk=spawn(**json.loads(entry.kwargs)))
    assert (record.queue, record.priority, record.owner_id) == ("other", 4, alice.pk)
    # Asked for again with other options: the same entry, the last options.
    assert tasks.describe.using(queue="celery").every("* * * * *", book, "!") == entry
    entry.refresh_from_db()
    record = tasks.describe.tasks(book).get(pk=spawn(**json.loads(entry.kwargs)))
    assert (record.queue, record.priority, record.owner_id) == ("celery", None, None)


def test_a_recurring_run_whose_owner_was_deleted_has_no_owner(book, django_user_model):
    bob = django_user_model.objects.create(username="bob")
    entry = tasks.describe.using(owner=bob).every("* * * * *", book)
    bob.delete()
    record = tasks.describe.tasks(book).get(pk=spawn(**json.loads(entry.kwargs)))
    assert record.owner_id is None and record.status == TaskStatus.READY


def test_entries_of_the_decorated_task_carry_no_options(book):
    entry = tasks.describe.every("* * * * *", book)
    assert "options" not in json.loads(entry.kwargs)
