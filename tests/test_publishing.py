"""The message a record sends: one Celery task, the record id, the real name, routing."""

from __future__ import annotations

import pytest
from django.test import override_settings
from kombu import Connection

from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord
from boogie_tasks.publishing import message_options, publish
from tests.celery_app import app
from tests.servers import reset_broker, use_broker
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def memory_broker():
    url = "memory://boogie-publish-tests"
    use_broker(url)
    with Connection(url) as connection:
        # The memory transport is process-wide: drop what earlier tests sent.
        for queue in ("celery", "other", "routed"):
            connection.default_channel.queue_purge(queue)
        yield connection
    reset_broker()


def _take(connection, queue):
    simple = connection.SimpleQueue(queue)
    try:
        message = simple.get(timeout=2)
    finally:
        simple.close()
    message.ack()
    return message


def test_delayed_sends_only_the_record_id_under_the_task_name(memory_broker, book):
    record = tasks.describe.delayed(book, "secret argument")
    message = _take(memory_broker, "celery")
    assert message.headers["task"] == "boogie_tasks.run"
    assert message.headers["shadow"] == "tests.testapp.tasks.describe"
    assert message.headers["id"] == str(record.pk)
    assert message.content_type == "application/json"
    args, kwargs, _ = message.decode()
    assert (args, kwargs) == ([str(record.pk)], {})
    assert "secret argument" not in message.body.decode()


@pytest.mark.parametrize(
    ("make", "queue"),
    [
        (lambda book: tasks.on_other_queue.delayed(book), "other"),
        (lambda book: tasks.routed.delayed(book), "routed"),  # the project's task_routes
        (lambda book: tasks.describe.using(queue="other", priority=3).delayed(book), "other"),
    ],
)
def test_routing_follows_the_task_not_the_runner(memory_broker, book, make, queue):
    record = make(book)
    message = _take(memory_broker, queue)
    assert message.headers["id"] == str(record.pk)
    if record.priority is not None:
        assert message.properties["priority"] == 3


def test_message_options_can_publish_a_record_again_alike(book):
    record = tasks.describe.using(queue="reports", priority=7).paused(book)
    options = message_options(record)
    assert options["queue"] == "reports" and options["priority"] == 7
    assert options["shadow"] == options["route_name"] == "tests.testapp.tasks.describe"
    assert options["task_id"] == str(record.pk)


def _unreachable():
    use_broker("redis://127.0.0.1:1/0")
    app.conf.broker_connection_timeout = 0.5


@pytest.fixture
def broker_down():
    _unreachable()
    yield
    app.conf.broker_connection_timeout = 2
    reset_broker()


@override_settings(BOOGIE_TASKS_PUBLISH_MAX_RETRIES=0)
def test_broker_down_leaves_the_record_ready_with_the_reason(broker_down, book):
    record = tasks.describe.delayed(book)
    # The record returned says what the database holds: the reason, never published.
    assert record.error.startswith("BrokerUnavailable: ") and record.queued_at is None
    record.refresh_from_db()
    assert record.queued_at is None
    assert record.status == TaskStatus.READY
    assert record.error.startswith("BrokerUnavailable: ")


@override_settings(BOOGIE_TASKS_PUBLISH_MAX_RETRIES=0)
def test_broker_down_can_fail_the_record_or_run_it_here(broker_down, book):
    failed = tasks.describe.using(on_broker_error="fail").delayed(book)
    failed.refresh_from_db()
    assert failed.status == TaskStatus.FAILED
    assert failed.error.startswith("BrokerUnavailable: ")

    here = tasks.describe.using(on_broker_error="run").delayed(book, "!")
    here.refresh_from_db()
    assert here.status == TaskStatus.SUCCESSFUL and here.result["text"] == "Dune!"


def test_publish_reports_success(memory_broker, book):
    record = tasks.describe.paused(book)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
    assert publish(record) is True
    assert _take(memory_broker, "celery").headers["id"] == str(record.pk)


def test_always_eager_runs_the_record_when_the_transaction_commits(book):
    from django.db import transaction

    app.conf.task_always_eager = True
    try:
        with transaction.atomic():
            record = tasks.describe.delayed(book, "!")
            assert TaskRecord.objects.get(pk=record.pk).status == TaskStatus.READY
        record.refresh_from_db()
        assert record.status == TaskStatus.SUCCESSFUL and record.result["text"] == "Dune!"
        autocommit = tasks.describe.delayed(book, "?")
        autocommit.refresh_from_db()
        assert autocommit.status == TaskStatus.SUCCESSFUL
    finally:
        app.conf.task_always_eager = False


# One transaction, many records: one callback, published together


def _ids(connection, queue, count):
    return [_take(connection, queue).headers["id"] for _ in range(count)]


def test_records_of_one_transaction_share_one_callback_and_keep_their_order(memory_broker, book):
    from django.db import connection, transaction

    with transaction.atomic():
        records = [tasks.describe.delayed(book, str(n)) for n in range(3)]
        assert len(connection.run_on_commit) == 1
    assert _ids(memory_broker, "celery", 3) == [str(record.pk) for record in records]


def test_a_rolled_back_savepoint_drops_only_its_own_records(memory_broker, book):
    from django.db import transaction

    with transaction.atomic():
        first = tasks.describe.delayed(book, "1")
        with pytest.raises(RuntimeError), transaction.atomic():
            tasks.describe.delayed(book, "gone")
            raise RuntimeError
        last = tasks.describe.delayed(book, "3")
    assert _ids(memory_broker, "celery", 2) == [str(first.pk), str(last.pk)]
    assert TaskRecord.objects.count() == 2
    with pytest.raises(Exception):  # nothing else was sent  # noqa: B017
        _take(memory_broker, "celery")


def test_callbacks_registered_in_between_run_in_their_place(memory_broker, book):
    from django.db import transaction

    from boogie_tasks.signals import task_enqueued

    events = []

    def enqueued(record, **kwargs):
        events.append(record.args[0])

    task_enqueued.connect(enqueued)
    try:
        with transaction.atomic():
            tasks.describe.delayed(book, "a")
            transaction.on_commit(lambda: events.append("theirs"))
            tasks.describe.delayed(book, "b")
            tasks.describe.delayed(book, "c")
    finally:
        task_enqueued.disconnect(enqueued)
    assert events == ["a", "theirs", "b", "c"]


def test_a_batch_declares_each_queue_once_and_every_message_arrives(memory_broker, book):
    from celery.signals import before_task_publish
    from django.db import transaction

    declared = []

    def publishing(headers, declare, **kwargs):
        declared.append((headers["shadow"], [queue.name for queue in declare or []]))

    before_task_publish.connect(publishing)
    try:
        with transaction.atomic():
            here = [tasks.describe.delayed(book, str(n)) for n in range(3)]
            there = [tasks.on_other_queue.delayed(book) for _ in range(2)]
            routed = [tasks.routed.delayed(book) for _ in range(2)]  # by task_routes
    finally:
        before_task_publish.disconnect(publishing)
    describe, other, by_route = (
        "tests.testapp.tasks.describe", "tests.testapp.tasks.on_other_queue",
        "tests.testapp.tasks.routed",
    )  # fmt: skip
    assert declared == [
        (describe, ["celery"]), (describe, []), (describe, []),
        (other, ["other"]), (other, []),
        (by_route, ["routed"]), (by_route, []),
    ]  # fmt: skip
    assert _ids(memory_broker, "celery", 3) == [str(record.pk) for record in here]
    assert _ids(memory_broker, "other", 2) == [str(record.pk) for record in there]
    assert _ids(memory_broker, "routed", 2) == [str(record.pk) for record in routed]


def test_the_message_shows_its_arguments_as_celery_would(memory_broker, book):
    from celery.utils.saferepr import saferepr

    record = tasks.describe.delayed(book)
    message = _take(memory_broker, "celery")
    assert message.headers["argsrepr"] == saferepr([str(record.pk)])
    assert message.headers["kwargsrepr"] == saferepr({})


@override_settings(BOOGIE_TASKS_PUBLISH_MAX_RETRIES=0)
def test_broker_down_at_commit_applies_each_records_policy(broker_down, book):
    from django.db import transaction

    with transaction.atomic():
        waiting = tasks.describe.delayed(book)
        failed = tasks.describe.using(on_broker_error="fail").delayed(book)
    waiting.refresh_from_db()
    failed.refresh_from_db()
    assert waiting.status == TaskStatus.READY and waiting.queued_at is None
    assert waiting.error.startswith("BrokerUnavailable: ")
    assert failed.status == TaskStatus.FAILED and failed.error.startswith("BrokerUnavailable: ")


def test_on_redis_a_transactions_messages_leave_in_one_pipeline(book, monkeypatch):
    """kombu 5.7's Producer.batch(): the messages of a commit go in one round trip."""
    from django.db import transaction
    from kombu.transport import redis as kombu_redis

    from tests.servers import server_url

    if not hasattr(kombu_redis, "PublishBatch"):
        pytest.skip("kombu < 5.7 has no batch publishing")
    url = server_url("BOOGIE_TEST_REDIS_URL")
    flushes = []
    flush = kombu_redis.PublishBatch.flush

    def counted(self):
        flushes.append(self._buffered)
        return flush(self)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", counted)
    use_broker(url)
    queue = "boogie-batch-test"
    try:
        with Connection(url) as connection:
            connection.default_channel.queue_purge(queue)
            with transaction.atomic():
                records = [
                    tasks.describe.using(queue=queue).delayed(book, str(n)) for n in range(5)
                ]
            assert [n for n in flushes if n] == [5]
            assert _ids(connection, queue, 5) == [str(record.pk) for record in records]
    finally:
        reset_broker()
