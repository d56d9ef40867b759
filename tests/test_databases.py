"""Task records in a database of their own: every query of the run path asks the router."""

from __future__ import annotations

import datetime

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boogie_tasks import TaskStatus
from boogie_tasks.dispatch import dispatch
from boogie_tasks.models import TaskRecord
from boogie_tasks.testing import run_pending
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "tasks"], transaction=True)

TABLE = TaskRecord._meta.db_table


class RecordsRouter:
    """boogie_tasks' models in "tasks"; everything else where Django puts it."""

    def db_for_read(self, model, **hints):
        return "tasks" if model._meta.app_label == "boogie_tasks" else None

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the record's content type and owner live in "default"


@pytest.fixture
def routed(settings):
    # The record's content type is a foreign key in its own database: a project
    # that moves the records keeps the same content types there (docs/databases).
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.using("tasks").all().delete()
    ContentType.objects.using("tasks").bulk_create(ContentType.objects.using("default").all())
    settings.DATABASE_ROUTERS = [f"{__name__}.RecordsRouter"]
    with CaptureQueriesContext(connections["default"]) as default:
        yield default
    touched = [q["sql"] for q in default.captured_queries if TABLE in q["sql"]]
    assert touched == [], "task records were read or written on 'default'"
    assert TaskRecord.objects.using("default").count() == 0


def _records(alias):
    return TaskRecord.objects.using(alias)


def test_the_whole_life_of_records_goes_to_the_routers_database(routed, book, tmp_path):
    # Commit safety: the caller's transaction is the one on the records' database.
    with transaction.atomic(using="tasks"):
        queued = tasks.describe.delayed(book, "!")
        paused = tasks.count_pages.paused(book)
        waiting = tasks.describe.paused(book)
    assert tasks.describe.call(book, "?")["text"].endswith("?")
    scheduled = tasks.describe.schedule(0.5, book)  # due within the dispatcher's next tick

    assert run_pending(tasks.describe) == [queued]  # READY first; the scheduled is not due yet
    assert dispatch()["due"] == 1  # SCHEDULED → READY, under SELECT ... FOR UPDATE where known
    paused.run()  # progress writes and the finish
    assert waiting.cancel(reason="not needed") is True
    run_pending()

    done = {record.pk: record for record in _records("tasks").all()}
    assert len(done) == 5
    assert done[queued.pk].status == TaskStatus.SUCCESSFUL
    assert done[scheduled.pk].status == TaskStatus.SUCCESSFUL
    assert done[paused.pk].progress_current == book.pages
    assert done[waiting.pk].error == "Canceled: not needed"
    texts = {result["text"] for result in tasks.describe.results(book)}
    assert texts == {f"{book}!", f"{book}?", str(book)}
    assert tasks.describe.clean(book) == 4
    assert _records("tasks").count() == 1


@pytest.mark.parametrize("attempts_left", [True, False])
def test_lost_runs_are_swept_on_the_routers_database(routed, book, attempts_left):
    record = tasks.describe.paused(book)
    TaskRecord.objects.using("tasks").filter(pk=record.pk).update(
        status=TaskStatus.RUNNING, attempts=1, max_attempts=2 if attempts_left else 1,
        heartbeat_at=timezone.now() - datetime.timedelta(hours=1),
    )  # fmt: skip
    assert dispatch()["lost"] == 1
    record.refresh_from_db(using="tasks")
    expected = TaskStatus.SCHEDULED if attempts_left else TaskStatus.FAILED
    assert record.status == expected and record.history[0]["error"].startswith("WorkerLost")
