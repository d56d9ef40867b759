"""The @task decorator and the methods of the Task object."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction

from boogie_tasks import Task, TaskFailed, TaskStatus, task
from boogie_tasks.exceptions import InvalidResult, InvalidTask, InvalidTaskArguments
from boogie_tasks.models import TaskRecord
from boogie_tasks.registry import get
from tests.testapp import tasks
from tests.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db


# Decoration


def test_decorator_returns_a_task_that_keeps_the_function_identity():
    assert isinstance(tasks.describe, Task)
    assert tasks.describe.name == "tests.testapp.tasks.describe"
    assert tasks.describe.__name__ == "describe"
    assert tasks.describe.__wrapped__.__name__ == "describe"
    assert get("tests.testapp.tasks.describe") is tasks.describe
    assert get("custom.name") is tasks.renamed
    assert tasks.on_other_queue.queue == "other"


def test_plain_call_records_nothing(book):
    assert tasks.describe(book, "?")["text"] == "Dune?"
    assert not TaskRecord.objects.exists()


def test_registry_refuses_a_second_function_under_one_name():
    with pytest.raises(InvalidTask, match="already registered"):
        task(name="tests.testapp.tasks.describe")(_module_level)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"queue": 3}, "queue must be a string"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"on_broker_error": "shrug"}, "on_broker_error must be one of"),
        ({"name": ""}, "name must be a string"),
    ],
)
def test_bad_options_fail_at_decoration(options, match):
    with pytest.raises(InvalidTask, match=match):
        task(**options)(_module_level)


def _module_level(obj):
    return None


def test_nested_functions_and_missing_first_parameter_are_refused():
    def inner(obj):
        return None

    with pytest.raises(InvalidTask, match="module level"):
        task(inner)
    with pytest.raises(InvalidTask, match="first positional parameter"):
        task(_no_object)


def _no_object(*, flag=False):
    return None


# Starting runs


def test_call_runs_here_records_and_returns_the_json_result(any_object):
    result = tasks.describe.call(any_object, "!")
    record = tasks.describe.tasks(any_object).get()
    assert (
        result
        == record.result
        == {
            "pk": str(any_object.pk),
            "text": f"{any_object}!",
            "pid": result["pid"],
        }
    )
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.object_id == str(any_object.pk)
    assert record.obj == any_object
    assert record.args == ["!"] and record.kwargs == {}
    assert record.attempts == 1 and record.started_at and record.finished_at


def test_call_passes_arguments_as_they_come_back_from_json(book):
    record_result = tasks.describe.call(book, suffix=("a",))  # a tuple becomes a list
    assert record_result["text"] == "Dune['a']"


def test_call_records_a_failure_and_raises(book):
    with pytest.raises(RuntimeError, match="kaput"):
        tasks.explode.call(book, "kaput")
    record = tasks.explode.tasks(book).get()
    assert record.status == TaskStatus.FAILED
    assert record.error == "RuntimeError: kaput"
    assert "raise RuntimeError(message)" in record.traceback


def test_task_failed_keeps_its_message_without_traceback(book):
    with pytest.raises(TaskFailed):
        tasks.refuse.call(book)
    record = tasks.refuse.tasks(book).get()
    assert (record.status, record.error, record.traceback) == (
        TaskStatus.FAILED,
        "nothing to do for this one",
        "",
    )


def test_a_result_that_is_not_json_fails_the_record(book):
    with pytest.raises(InvalidResult, match="tests.testapp.tasks.not_json: result"):
        tasks.not_json.call(book)
    record = tasks.not_json.tasks(book).get()
    assert record.status == TaskStatus.FAILED
    assert record.error.startswith("InvalidResult: tests.testapp.tasks.not_json: result")


def test_call_inside_a_transaction_survives_a_broken_body(book):
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            tasks.break_transaction.call(book)
        # The body's writes are rolled back; the transaction is still usable.
        record = tasks.break_transaction.tasks(book).get()
        assert record.status == TaskStatus.FAILED
        assert record.error.startswith("IntegrityError")
        assert not Tag.objects.filter(slug="dup").exists()


def test_delayed_records_ready_and_publishes_after_commit(book, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        record = tasks.describe.delayed(book, "x")
        assert record.id and record.status == TaskStatus.READY
        assert TaskRecord.objects.get(pk=record.id).status == TaskStatus.READY
    assert len(callbacks) == 1


def test_paused_then_run_here(book):
    record = tasks.describe.paused(book, "?")
    assert record.status == TaskStatus.PAUSED
    assert record.run()["text"] == "Dune?"
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.attempts == 1


def test_paused_then_enqueue(book, django_capture_on_commit_callbacks):
    record = tasks.describe.paused(book)
    with django_capture_on_commit_callbacks() as callbacks:
        record.enqueue()
    assert record.status == TaskStatus.READY == TaskRecord.objects.get(pk=record.pk).status
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, InvalidTaskArguments, "the first argument must be a saved model instance"),
        (("not a model",), {}, TypeError, "not 'not a model'"),
        ((Book(title="unsaved"),), {}, ValueError, "is not saved"),
        ((None, object()), {}, TypeError, "argument 'suffix' <object object"),
        ((None,), {"suffix": float("nan")}, ValueError, "argument 'suffix' nan is not JSON"),
        ((None, "a", None, "extra"), {}, TypeError, "too many positional arguments"),
        ((None,), {"nope": 1}, TypeError, "unexpected keyword argument 'nope'"),
    ],
)
def test_bad_input_names_the_task_and_writes_nothing(book, args, kwargs, error, match):
    args = tuple(book if a is None and i == 0 else a for i, a in enumerate(args))
    for method in (tasks.describe.call, tasks.describe.delayed, tasks.describe.paused):
        with pytest.raises(error, match=match) as caught:
            method(*args, **kwargs)
        assert str(caught.value).startswith("tests.testapp.tasks.describe: ")
    assert not TaskRecord.objects.exists()


# Reading runs


def test_results_tasks_finished_newest_first_per_object(book):
    other = Book.objects.create(title="Emma")
    tasks.describe.call(book, "1")
    tasks.describe.call(other, "2")
    tasks.describe.call(book, "3")
    with pytest.raises(RuntimeError):
        tasks.explode.call(book)
    waiting = tasks.describe.paused(book, "4")

    assert [r["text"] for r in tasks.describe.results(book)] == ["Dune3", "Dune1"]
    assert [r["text"] for r in tasks.describe.results()] == ["Dune3", "Emma2", "Dune1"]
    assert tasks.describe.results(book)[0]["text"] == "Dune3"
    assert list(tasks.describe.tasks(book))[0] == waiting
    assert waiting not in tasks.describe.finished(book)
    assert tasks.describe.finished().count() == 3
    assert tasks.explode.finished(book).count() == 1


def test_clean_keeps_unfinished_and_optionally_the_newest_of_each_object(book):
    other = Book.objects.create(title="Emma")
    for suffix in "abc":
        tasks.describe.call(book, suffix)
    tasks.describe.call(other, "z")
    waiting = tasks.describe.paused(book)
    tasks.count_pages.call(book)

    assert tasks.describe.clean(keep_last=True) == 2
    assert [r["text"] for r in tasks.describe.results()] == ["Emmaz", "Dunec"]
    assert tasks.describe.clean(book) == 1
    assert list(tasks.describe.tasks(book)) == [waiting]
    assert tasks.describe.clean(book, finished=False) == 1
    assert tasks.count_pages.tasks().count() == 1  # another task's records are untouched


def test_using_returns_a_copy_with_other_options(book):
    user = User.objects.create(username="ann")
    copy = tasks.describe.using(queue="reports", priority=5, owner=user)
    assert copy is not tasks.describe and tasks.describe.queue == ""
    assert copy.name == tasks.describe.name
    record = copy.paused(book)
    assert (record.queue, record.priority, record.owner) == ("reports", 5, user)
    assert tasks.describe.using(owner=AnonymousUser()).owner is None
    with pytest.raises(InvalidTask, match="owner must be a saved user"):
        tasks.describe.using(owner=book)
    with pytest.raises(InvalidTask):
        tasks.describe.using(on_broker_error="maybe")


def test_string_primary_keys_round_trip():
    tag = Tag.objects.create(slug="x/y z")
    record = tasks.describe.paused(tag)
    assert record.obj == tag
    assert tasks.describe.tasks(tag).get() == record


def test_a_date_argument_is_refused_with_what_to_send_instead(book):
    import datetime

    with pytest.raises(InvalidTaskArguments, match=r"pass value\.isoformat\(\)"):
        tasks.describe.delayed(book, datetime.date(2026, 1, 1))


def test_a_missing_table_says_to_run_migrate(book):
    from django.db import connection, transaction

    from boogie_tasks.exceptions import MigrationsNotApplied

    with pytest.raises(MigrationsNotApplied, match=r"run `python manage.py migrate`"):
        with transaction.atomic():  # rolled back, the table with it
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE boogie_tasks_taskrecord RENAME TO boogie_tasks_gone")
            tasks.describe.delayed(book)


def test_waiting_in_vain_for_an_overdue_scheduled_run_says_beat_must_run(book):
    import datetime

    from django.utils import timezone

    record = tasks.describe.schedule(datetime.timedelta(seconds=-30), book)
    with pytest.raises(TimeoutError, match="celery beat .* must be running"):
        record.wait(timeout=0.1)
    assert record.run_at < timezone.now()
