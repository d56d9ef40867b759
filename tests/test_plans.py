"""The fenced writes find their record by primary key, whatever the statistics say.

On PostgreSQL, a bare ``status = 'READY'`` condition lets the planner pick an
index on status (or the partial unique index of active records) when its
statistics say few records wait, and then read every waiting record to find
one: each claim costs O(backlog). These tests build that state (statistics
taken over finished records, then a backlog) and read the plans.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boogie_tasks import TaskStatus, transitions
from boogie_tasks.models import TaskRecord
from boogie_tasks.progress import ProgressWriter
from boogie_tasks.runner import cancel
from tests.helpers import claim
from tests.testapp import tasks

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL's planner (BOOGIE_TEST_DATABASE_URL)"
    ),
]

BACKLOG = 2000


@pytest.fixture
def backlog(book):
    """Statistics taken when every record had finished, then a backlog, READY and RUNNING.

    The records are written as the runs write them: made, then moved by UPDATEs.
    """
    record = tasks.describe.paused(book)
    fields = {
        field.attname: getattr(record, field.attname)
        for field in TaskRecord._meta.concrete_fields
        if field.attname != "id"
    }
    TaskRecord.objects.bulk_create(TaskRecord(**fields) for _ in range(BACKLOG))
    TaskRecord.objects.update(status=TaskStatus.SUCCESSFUL)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TaskRecord._meta.db_table}")
    TaskRecord.objects.bulk_create(TaskRecord(**fields) for _ in range(BACKLOG))
    waiting = TaskRecord.objects.paused()
    waiting.update(status=TaskStatus.READY, queued_at=timezone.now())
    running = list(waiting.order_by("id").values_list("id", flat=True)[: BACKLOG // 2])
    TaskRecord.objects.filter(pk__in=running).update(
        status=TaskStatus.RUNNING, attempts=1, heartbeat_at=timezone.now()
    )
    return list(TaskRecord.objects.ready().order_by("id")[:3])


def _plans(queries) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].startswith("UPDATE"):
                cursor.execute("EXPLAIN " + query["sql"])
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _by_primary_key(plan: str) -> bool:
    pkey = f"{TaskRecord._meta.db_table}_pkey"
    return f"Index Scan using {pkey}" in plan and "Index Cond: (id = " in plan


def test_the_claim_and_the_finish_use_the_primary_key(backlog):
    with CaptureQueriesContext(connection) as queries:
        claimed = claim(backlog[0].pk, waiting=False)
        transitions.finish(claimed, TaskStatus.SUCCESSFUL, {"result": 1})
    plans = _plans(queries)
    assert len(plans) == 2
    for plan in plans:
        assert _by_primary_key(plan), plan


def test_progress_and_cancel_writes_use_the_primary_key(backlog):
    running = claim(backlog[1].pk)
    writer = ProgressWriter(running.pk, running.attempts, running.task_name)
    with CaptureQueriesContext(connection) as queries:
        writer.beat()
        writer.flush()
        cancel(running)
        cancel(backlog[2])
    plans = _plans(queries)
    assert len(plans) == 5  # cancel(running) tries the waiting statuses first
    for plan in plans:
        assert _by_primary_key(plan), plan


def test_the_sweeps_read_the_partial_indexes_of_waiting_and_running_records(backlog):
    """The dispatcher's reads of READY and RUNNING records go through their partial indexes."""
    from boogie_tasks.dispatch import dispatch

    with CaptureQueriesContext(connection) as queries:
        dispatch()
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    plans = {}
    with connection.cursor() as cursor:
        for sql in selects:
            cursor.execute("EXPLAIN " + sql)
            plans[sql] = "\n".join(row[0] for row in cursor.fetchall())
    used = "\n".join(plans.values())
    assert "boogie_task_queued_idx" in used, plans
    assert "boogie_task_heartbeat_idx" in used, plans
