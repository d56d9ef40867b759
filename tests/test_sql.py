"""The hand-written statements match the model they write."""

from __future__ import annotations

import re

import pytest

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


def test_a_record_inserted_by_hand_reads_back_as_the_orm_wrote_it(book):
    """Every field, of every type, as save() would have stored it."""
    record = tasks.describe.using(queue="other", priority=3).paused(
        book, "a", {"nested": [1, 2.5, None]}
    )
    stored = TaskRecord.objects.get(pk=record.pk)
    for field in TaskRecord._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(record, field.attname), field.name
    assert not record._state.adding


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
