"""``manage.py boogie_tasks``: every subcommand, its output, and bad input."""

from __future__ import annotations

import datetime
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from boogie_tasks.management.commands.boogie_tasks import age
from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus
from tests.testapp import tasks
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    """Run the command; return what it printed."""
    out = StringIO()
    call_command("boogie_tasks", *args, stdout=out)
    return out.getvalue()


def _age(record: TaskRecord, days: float) -> None:
    when = timezone.now() - datetime.timedelta(days=days)
    TaskRecord.objects.filter(pk=record.pk).update(created_at=when)


@pytest.fixture
def records(book):
    """A successful, a failed and a paused record of three tasks, for one book."""
    tasks.count_pages.call(book)
    with pytest.raises(RuntimeError):
        tasks.explode.call(book, "<b>bold</b>")
    tasks.describe.paused(book)
    return {r.task_name.rsplit(".", 1)[1]: r for r in TaskRecord.objects.all()}


# list


def test_list_prints_a_table_newest_first(records, book):
    lines = run("list").splitlines()
    assert lines[0].split() == [
        "id", "task", "status", "object", "progress", "created", "finished"
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [
        str(records[name].pk) for name in ("describe", "explode", "count_pages")
    ]
    count_line = lines[3]
    assert tasks.count_pages.name in count_line and "SUCCESSFUL" in count_line
    assert f"testapp.book:{book.pk}" in count_line and "5 / 5 (100%)" in count_line
    assert "PAUSED" in lines[1] and lines[1].rstrip().endswith("-")  # not finished


def test_list_filters_by_task_status_object_and_age(records, book):
    other = Book.objects.create(title="Emma")
    other_record = tasks.describe.paused(other)
    _age(records["count_pages"], 40)

    def ids(*args: str) -> set[str]:
        return {line.split()[0] for line in run("list", *args).splitlines()[1:]}

    assert ids("--task", tasks.describe.name) == {str(records["describe"].pk), str(other_record.pk)}
    assert ids("--status", "failed") == {str(records["explode"].pk)}
    assert ids("--status", "FAILED", "--status", "successful") == {
        str(records["explode"].pk), str(records["count_pages"].pk)
    }  # fmt: skip
    assert ids("--object", f"testapp.book:{other.pk}") == {str(other_record.pk)}
    assert ids("--older-than", "30d") == {str(records["count_pages"].pk)}
    assert run("list", "--task", "no.such.task") == "No task records.\n"


def test_list_limit_says_when_more_exist(records):
    output = run("list", "--limit", "2").splitlines()
    assert len(output) == 4 and output[-1] == "(showing the newest 2; use --limit to see more)"
    assert "--limit" not in run("list", "--limit", "3")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--status", "done"), "invalid status 'done': choose from PAUSED, SCHEDULED"),
        (("list", "--older-than", "30x"), "invalid age '30x': use a whole number and a unit"),
        (("list", "--older-than", "d"), "invalid age 'd'"),
        (("list", "--object", "book:1"), "invalid object 'book:1': use app_label.model:pk"),
        (("list", "--object", "testapp.book"), "invalid object 'testapp.book'"),
        (("list", "--object", "nope.model:1"), "no model nope.model is installed"),
        (("list", "--limit", "0"), "invalid number '0'"),
        (("clean", "--batch-size", "-5"), "invalid number '-5'"),
        (("stats", "--last", "many"), "invalid number 'many'"),
        (("show", "42"), "invalid record id '42': a record id is a UUID"),
        (("frob",), "invalid choice: 'frob'"),
        ((), "subcommand"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", datetime.timedelta(seconds=30)),
        ("15m", datetime.timedelta(minutes=15)),
        ("12h", datetime.timedelta(hours=12)),
        ("30d", datetime.timedelta(days=30)),
        ("2w", datetime.timedelta(weeks=2)),
        ("2W", datetime.timedelta(weeks=2)),
    ],
)
def test_age_accepts_a_number_and_a_unit(text, expected):
    assert age(text) == expected


# show


def test_show_prints_every_field_and_the_traceback(records, book):
    failed = records["explode"]
    output = run("show", str(failed.pk))
    fields = dict(
        line.split(None, 1) if " " in line else (line, "")
        for line in output.split("traceback:")[0].splitlines()
    )
    for field in TaskRecord._meta.concrete_fields:
        assert field.name in fields or field.name == "traceback", field.name
    assert fields["status"] == "FAILED"
    assert fields["error"] == "RuntimeError: <b>bold</b>"
    assert fields["args"] == '["<b>bold</b>"]'
    assert fields["object"] == f"testapp.book:{book.pk}"
    traceback = output.split("traceback:\n", 1)[1]
    assert traceback.startswith("Traceback (most recent call last)")
    assert "RuntimeError: <b>bold</b>" in traceback
    assert "(none)" in run("show", str(records["count_pages"].pk))


def test_show_of_an_unknown_id():
    missing = uuid.uuid4()
    with pytest.raises(CommandError, match=f"no task record with id {missing}"):
        run("show", str(missing))


# run


def test_run_runs_a_paused_record_here(records):
    paused = records["describe"]
    output = run("run", str(paused.pk))
    assert output.startswith(f"{paused.task_name} record {paused.pk}: SUCCESSFUL, result: ")
    assert '"text": "Dune"' in output
    paused.refresh_from_db()
    assert paused.status == TaskStatus.SUCCESSFUL and paused.attempts == 1


def test_run_reports_a_failure(book):
    record = tasks.explode.paused(book, "nope")
    with pytest.raises(CommandError, match=f"record {record.pk}: FAILED: RuntimeError: nope"):
        run("run", str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED


def test_run_refuses_a_record_that_is_not_waiting(records):
    done = records["count_pages"]
    with pytest.raises(CommandError, match="is SUCCESSFUL; only a PAUSED, SCHEDULED or READY"):
        run("run", str(done.pk))
    with pytest.raises(CommandError, match="no task record with id"):
        run("run", str(uuid.uuid4()))


# cancel


def test_cancel_a_waiting_record(records):
    paused = records["describe"]
    assert run("cancel", str(paused.pk)) == f"{paused.task_name} record {paused.pk}: CANCELED\n"
    paused.refresh_from_db()
    assert paused.status == TaskStatus.CANCELED and paused.finished_at is not None


def test_cancel_a_running_record_asks_it_to_stop(book):
    record = tasks.describe.paused(book)
    TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.RUNNING)
    assert "RUNNING, asked to stop" in run("cancel", str(record.pk))
    record.refresh_from_db()
    assert record.status == TaskStatus.RUNNING and record.cancel_requested


def test_cancel_a_finished_record_is_an_error(records):
    with pytest.raises(CommandError, match="is already SUCCESSFUL; nothing to cancel"):
        run("cancel", str(records["count_pages"].pk))
    with pytest.raises(CommandError, match="no task record with id"):
        run("cancel", str(uuid.uuid4()))


# retry


def test_retry_queues_a_new_record(records, book, django_capture_on_commit_callbacks):
    failed = records["explode"]
    with django_capture_on_commit_callbacks() as callbacks:
        output = run("retry", str(failed.pk))
    assert len(callbacks) == 1
    new = TaskRecord.objects.exclude(pk__in=[r.pk for r in records.values()]).get()
    assert output == f"{failed.task_name} record {failed.pk} retried as {new.pk} (READY)\n"
    assert (new.status, new.args, new.object_id) == ("READY", ["<b>bold</b>"], str(book.pk))


def test_retry_refuses_unfinished_and_unknown_records(records, book):
    with pytest.raises(CommandError, match="is PAUSED; only a finished"):
        run("retry", str(records["describe"].pk))
    TaskRecord.objects.filter(pk=records["explode"].pk).update(task_name="gone.removed")
    with pytest.raises(CommandError, match="no task named 'gone.removed' is registered"):
        run("retry", str(records["explode"].pk))
    with pytest.raises(CommandError, match="no task record with id"):
        run("retry", str(uuid.uuid4()))
    assert TaskRecord.objects.count() == 3


# clean


def test_clean_older_than_keep_last_reports_per_task(book):
    other = Book.objects.create(title="Emma")
    for days in (50, 40):
        tasks.describe.call(book)
        _age(tasks.describe.tasks(book).first(), days)
    tasks.describe.call(book)  # recent: stays
    tasks.describe.call(other)
    _age(tasks.describe.tasks(other).first(), 60)  # the last of its object: stays
    for days in (60, 50):
        tasks.count_pages.call(book)
        _age(tasks.count_pages.tasks(book).first(), days)
    paused = tasks.describe.paused(book)
    _age(paused, 90)  # not final: stays

    output = run("clean", "--older-than", "30d", "--keep-last")

    assert output.splitlines() == [
        f"removed 1  {tasks.count_pages.name}",
        f"removed 2  {tasks.describe.name}",
        "removed 3 records in all",
    ]
    assert TaskRecord.objects.for_task(tasks.describe.name).count() == 3
    assert TaskRecord.objects.for_task(tasks.count_pages.name).count() == 1
    assert run("clean", "--older-than", "30d", "--keep-last") == "Nothing to remove.\n"


def test_clean_filters_dry_run_all_and_batches(records, book):
    assert run("clean", "--task", tasks.count_pages.name, "--dry-run").splitlines() == [
        f"would remove 1  {tasks.count_pages.name}",
        "would remove 1 record in all",
    ]
    assert TaskRecord.objects.count() == 3
    assert run("clean", "--status", "failed", "--batch-size", "1").endswith(
        "removed 1 record in all\n"
    )
    assert not TaskRecord.objects.failed().exists()
    with pytest.raises(CommandError, match="--status PAUSED is not a final state"):
        run("clean", "--status", "paused")
    assert run("clean", "--status", "paused", "--all").endswith("removed 1 record in all\n")
    assert run("clean", "--all").endswith("removed 1 record in all\n")
    assert TaskRecord.objects.count() == 0


# stats


def test_stats_prints_counts_and_percentiles(records, book):
    start = timezone.now() - datetime.timedelta(hours=1)
    for seconds in (2, 4, 90):
        tasks.count_pages.call(book)
        TaskRecord.objects.filter(pk=tasks.count_pages.tasks(book).first().pk).update(
            started_at=start, finished_at=start + datetime.timedelta(seconds=seconds)
        )
    TaskRecord.objects.filter(pk=records["count_pages"].pk).update(
        started_at=start, finished_at=start + datetime.timedelta(seconds=0.5)
    )

    lines = run("stats").splitlines()

    assert lines[0].split() == [
        "task", *TaskStatus.values, "total", "runs", "p50", "p90", "p99"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    # PAUSED SCHEDULED READY RUNNING SUCCESSFUL FAILED CANCELED total runs p50 p90 p99
    assert rows[tasks.count_pages.name] == [
        "0", "0", "0", "0", "4", "0", "0", "4", "4", "2.0s", "1m30s", "1m30s"
    ]  # fmt: skip
    assert rows[tasks.explode.name][5:] == ["1", "0", "1", "0", "-", "-", "-"]
    assert rows[tasks.describe.name][0] == "1"
    only = run("stats", "--task", tasks.explode.name, "--status", "failed").splitlines()
    assert len(only) == 2 and only[1].startswith(tasks.explode.name)
    assert run("stats", "--object", f"testapp.book:{book.pk + 1}") == "No task records.\n"
    last = run("stats", "--task", tasks.count_pages.name, "--last", "1").splitlines()[1]
    assert last.split()[-4:] == ["1", "1m30s", "1m30s", "1m30s"]  # the latest finished


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["list", "--older-than", "30x"], 2, "error: argument --older-than: invalid age '30x'"),
        (["list", "--status", "done"], 2, "error: argument --status: invalid status 'done'"),
        (["list", "--object", "foo"], 2, "error: argument --object: invalid object 'foo'"),
        (["show", "nonsense"], 2, "error: argument id: invalid record id 'nonsense'"),
        (["show", "0190f1c2-0000-7000-8000-000000000000"], 1, "CommandError: no task record"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_the_command_line_exits_as_the_docs_say(args, status, says):
    """docs/operating.rst: argparse's usage and status 2, or CommandError and status 1."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "BOOGIE_TEST_WORKER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "boogie_tasks", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == status, done.stderr
    assert says in done.stderr, done.stderr
    if status == 2:
        assert "usage:" in done.stderr


def test_user_data_is_printed_with_control_characters_escaped(book, capsys):
    """An object id or an error can never move the cursor or rewrite a row."""
    record = tasks.describe.paused(book)
    TaskRecord.objects.filter(pk=record.pk).update(
        object_id="7\r\x1b[2K", error="bad\x1b]0;title\x07", progress_message="a\u202eb",
        traceback="Traceback:\n\tline\x1b[31m",
    )  # fmt: skip
    call_command("boogie_tasks", "list")
    call_command("boogie_tasks", "show", str(record.pk))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\u202e" not in out
    assert "7\\r\\x1b[2K" in out and "bad\\x1b]0;title\\x07" in out and "a\\u202eb" in out
    assert "Traceback:\n\tline\\x1b[31m" in out  # a traceback keeps its lines


def test_the_help_says_it_acts_as_no_user(capsys):
    with pytest.raises(SystemExit):
        call_command("boogie_tasks", "--help")
    assert "acts as no user" in capsys.readouterr().out.replace("\n", " ")
