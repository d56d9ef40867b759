"""The hand-written statements match the model they write."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boogie_tasks import sql
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def _columns() -> list[str]:
    return [field.column for field in TaskRecord._meta.concrete_fields]


def test_the_insert_writes_every_column_of_the_model_once():
    """A field added to the model without its column here fails this test."""
    listed = sql.INSERT.split("(", 1)[1].split(")", 1)[0]
    assert [name.strip() for name in listed.split(",")] == _columns()
    assert re.findall(r"%\((\w+)\)s", sql.INSERT) == [
        field.attname for field in TaskRecord._meta.concrete_fields
    ]
    assert TaskRecord._meta.db_table in sql.INSERT


def test_every_statement_names_only_columns_of_the_table():
    columns = set(_columns())
    for statement in (sql.CLAIM_READY, sql.CLAIM_WAITING, sql.FINISH):
        assigned = re.findall(r"^\s+(\w+) = ", statement, re.MULTILINE)
        assert assigned and set(assigned) <= columns, statement


def test_finish_keeps_the_error_a_cancel_wrote_when_given_none(book):
    from tests.helpers import claim

    record = tasks.describe.paused(book)
    claimed = claim(record.pk)
    record.cancel(reason="enough")  # asked while running: the reason is kept in error
    values = {
        "status": TaskStatus.CANCELED, "result": None, "error": None, "traceback": "",
        "progress_current": 0, "progress_total": None, "progress_message": "", "run_at": None,
        "finished_at": None, "history": [], "id": record.pk, "attempts": claimed.attempts,
    }  # fmt: skip
    assert sql.execute(sql.FINISH, "default", values) == 1
    record.refresh_from_db()
    assert (record.status, record.error) == (TaskStatus.CANCELED, "Canceled: enough")
    assert sql.execute(sql.FINISH, "default", values) == 0  # no longer RUNNING: fenced out


def test_a_task_takes_its_model_from_its_first_parameters_annotation():
    from tests.testapp.models import Book

    assert tasks.count_pages.model is Book
    assert tasks.describe.model is None  # not annotated: the object is fetched apart


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="an UPDATE in WITH (BOOGIE_TEST_DATABASE_URL)"
)


def _ready(obj):
    record = tasks.describe.paused(obj)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    return record


def _claim_with(record, model):
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    content_type = ContentType.objects.get_for_model(model).pk
    return sql.claim_with_object(
        sql.CLAIM_READY, "default", record.pk, timezone.now(), "w:1", model, content_type
    )


@postgresql_only
def test_the_claim_reads_the_record_and_its_object_as_the_orm_reads_them(any_object):
    model = type(any_object)
    assert sql.can_claim_with_object("default", model)
    record = _ready(any_object)
    with CaptureQueriesContext(connection) as queries:
        claimed, fetched = _claim_with(record, model)
    assert len(queries) == 1
    stored = TaskRecord.objects.get(pk=record.pk)
    assert (claimed.status, claimed.attempts) == (TaskStatus.RUNNING, 1)
    for field in TaskRecord._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(stored, field.attname), field.name
    expected = model._base_manager.get(pk=any_object.pk)
    for field in model._meta.concrete_fields:
        value = getattr(fetched, field.attname)
        assert value == getattr(expected, field.attname), field.name
        assert type(value) is type(getattr(expected, field.attname)), field.name
    assert fetched._state.db == "default" and not fetched._state.adding
    assert _claim_with(record, model) == (None, None)  # claimed once only


@postgresql_only
def test_a_record_of_another_model_or_a_gone_object_comes_back_without_it(book):
    from tests.testapp.models import Document

    claimed, fetched = _claim_with(_ready(book), Document)  # its object_id is never cast
    assert claimed is not None and claimed.status == TaskStatus.RUNNING and fetched is None
    gone = _ready(book)
    type(book).objects.filter(pk=book.pk).delete()
    claimed, fetched = _claim_with(gone, type(book))
    assert claimed is not None and fetched is None


def test_models_read_apart_from_the_claim(db):
    from tests.testapp.models import Book, Novel

    assert not sql.can_claim_with_object("default", Novel)  # two tables
    assert sql.can_claim_with_object("default", Book) == (connection.vendor == "postgresql")


@pytest.mark.django_db(transaction=True)
def test_a_workers_run_of_an_annotated_task_is_two_statements(book, tmp_path):
    from boogie_tasks.runner import run
    from tests.helpers import verbs

    records = [tasks.count_pages.paused(book) for _ in range(2)]
    broken = TaskRecord.objects.create(
        task_name=tasks.count_pages.name, content_type_id=records[0].content_type_id,
        object_id="not-a-number", status=TaskStatus.READY,
    )  # fmt: skip
    TaskRecord.objects.filter(pk__in=[r.pk for r in records]).update(status=TaskStatus.READY)
    run.push_request(shadow=tasks.count_pages.name)  # as a worker receives it
    try:
        run(str(records[0].pk))  # the content type is cached from here on
        with CaptureQueriesContext(connection) as queries:
            assert run(str(records[1].pk)) == TaskStatus.SUCCESSFUL
        assert run(str(broken.pk)) == TaskStatus.FAILED
    finally:
        run.pop_request()
    updates = ["UPDATE"] * (len(verbs(queries)) - 1)
    if connection.vendor == "postgresql":
        assert verbs(queries) == ["WITH", *updates], queries.captured_queries
    else:
        assert verbs(queries)[:2] == ["UPDATE", "SELECT"], queries.captured_queries
    broken.refresh_from_db()
    assert broken.attempts == 1 and "expected a number" in broken.error, broken.error


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_claim_of_its_own_may_commit_without_waiting_for_the_disk(book, settings):
    """BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT = False: that claim only, never the caller's."""
    from django.db import transaction

    from tests.helpers import claim, sent

    record = tasks.describe.paused(book)
    with CaptureQueriesContext(connection) as queries:
        assert claim(record.pk) is not None  # the default: as every commit
    assert "synchronous_commit" not in sent(queries)[0]

    settings.BOOGIE_TASKS_CLAIM_SYNCHRONOUS_COMMIT = False
    record = tasks.describe.paused(book)
    with CaptureQueriesContext(connection) as queries:
        claimed = claim(record.pk)
    assert claimed is not None and claimed.status == TaskStatus.RUNNING
    assert "set_config('synchronous_commit', 'off', true)" in sent(queries)[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # for that claim's own transaction only
    assert TaskRecord.objects.get(pk=record.pk).status == TaskStatus.RUNNING

    other = tasks.describe.paused(book)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            assert claim(other.pk) is not None
        assert "synchronous_commit" not in sent(queries)[0]  # it would outlive the claim
