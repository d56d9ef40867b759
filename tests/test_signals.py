"""Signals along a run's life."""

from __future__ import annotations

import pytest
from django.test import override_settings

from boogie_tasks import TaskStatus
from boogie_tasks.signals import task_enqueued, task_finished, task_progress, task_started
from boogie_tasks.testing import run_pending
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def received():
    seen = []

    def make(name):
        def receiver(sender, **kwargs):
            record = kwargs.get("record")
            seen.append((name, record.task_name if record else kwargs["record_id"], kwargs))

        return receiver

    receivers = {
        signal: make(name)
        for signal, name in [
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_progress, "progress"),
            (task_finished, "finished"),
        ]
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


@override_settings(BOOGIE_TASKS_PROGRESS_INTERVAL=0)
def test_a_run_sends_enqueued_started_progress_finished(received, book):
    record = tasks.count_pages.delayed(book)  # autocommit: published at once (memory broker)
    run_pending()
    names = [name for name, _, _ in received]
    assert names[0] == "enqueued" and names[1] == "started" and names[-1] == "finished"
    assert "progress" in names
    progress = [kwargs for name, _, kwargs in received if name == "progress"]
    assert progress[-1]["total"] == book.pages
    assert received[-1][2]["status"] == TaskStatus.SUCCESSFUL
    assert received[0][2]["record"].pk == record.pk


def test_cancel_and_failure_send_finished(received, book):
    tasks.describe.paused(book).cancel()
    with pytest.raises(RuntimeError):
        tasks.explode.call(book)
    finished = [kwargs["status"] for name, _, kwargs in received if name == "finished"]
    assert finished == [TaskStatus.CANCELED, TaskStatus.FAILED]


def test_a_receiver_that_raises_never_breaks_a_run(book):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    task_started.connect(broken)
    try:
        assert tasks.describe.call(book)["pk"] == str(book.pk)
    finally:
        task_started.disconnect(broken)


@override_settings(BOOGIE_TASKS_STALE_AFTER=60)
def test_a_lost_run_asked_to_stop_sends_finished(received, book):
    import datetime

    from django.utils import timezone

    from boogie_tasks.dispatch import dispatch
    from boogie_tasks.models import TaskRecord
    from tests.helpers import claim

    record = tasks.describe.paused(book)
    claim(record.pk)
    record.cancel()
    stale = timezone.now() - datetime.timedelta(seconds=61)
    TaskRecord.objects.filter(pk=record.pk).update(heartbeat_at=stale)
    dispatch()
    assert [kw["status"] for name, _, kw in received if name == "finished"] == [TaskStatus.CANCELED]
