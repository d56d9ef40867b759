"""The admin of records and the inline on a model's admin page."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from boogie_tasks.models import TaskRecord
from boogie_tasks.status import TaskStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def records(book):
    tasks.count_pages.call(book)
    with pytest.raises(RuntimeError):
        tasks.explode.call(book, "<b>bold</b>")
    return tasks.describe.paused(book)


def test_changelist_lists_filters_and_searches(admin_client, records, book):
    url = reverse("admin:boogie_tasks_taskrecord_changelist")
    page = admin_client.get(url).content.decode()
    assert page.count('class="field-task_name"') == 3
    assert f'href="/admin/testapp/book/{book.pk}/change/"' in page
    assert "5 / 5 (100%)" in page

    failed = admin_client.get(url, {"status__exact": "FAILED"}).content.decode()
    assert failed.count('class="field-task_name"') == 1 and "explode" in failed
    by_task = admin_client.get(url, {"task_name": tasks.describe.name}).content.decode()
    assert by_task.count('class="field-task_name"') == 1
    found = admin_client.get(url, {"q": str(records.id)}).content.decode()
    assert found.count('class="field-task_name"') == 1 and str(records.id) in found
    by_object = admin_client.get(url, {"q": str(book.pk)}).content.decode()
    assert by_object.count('class="field-task_name"') == 3


def test_detail_shows_the_traceback_escaped_and_is_read_only(admin_client, book, records):
    failed = tasks.explode.tasks(book).get()
    url = reverse("admin:boogie_tasks_taskrecord_change", args=[failed.pk])
    page = admin_client.get(url).content.decode()
    assert "RuntimeError: &lt;b&gt;bold&lt;/b&gt;" in page
    assert "Traceback (most recent call last)" in page
    assert 'name="_save"' not in page
    assert admin_client.get(reverse("admin:boogie_tasks_taskrecord_add")).status_code == 403


def test_inline_shows_the_objects_runs(admin_client, book, records):
    page = admin_client.get(reverse("admin:testapp_book_change", args=[book.pk]))
    content = page.content.decode()
    assert page.status_code == 200
    assert "Task runs" in content
    for record in TaskRecord.objects.for_object(book):
        assert record.task_name in content


def test_object_link_quotes_string_primary_keys(admin_client):
    from tests.testapp.models import Tag

    tag = Tag.objects.create(slug="a/b c")
    tasks.describe.paused(tag)
    page = admin_client.get(reverse("admin:boogie_tasks_taskrecord_changelist")).content.decode()
    href = reverse("admin:testapp_tag_change", args=[quote("a/b c")])
    assert f'href="{href}">Tag object (a/b c)</a>' in page  # the object's str()
    assert admin_client.get(href).status_code == 200


# Columns: badges, progress bar, ETA, traceback block


def _changelist(client, **params) -> str:
    url = reverse("admin:boogie_tasks_taskrecord_changelist")
    return client.get(url, params).content.decode()


def test_changelist_shows_status_badges_progress_bars_and_eta(admin_client, records, book):
    page = _changelist(admin_client)
    assert page.count('class="boogie-status boogie-status-') == 3
    for status, label in (("successful", "Successful"), ("failed", "Failed"), ("paused", "Paused")):
        assert f'boogie-status-{status}"' in page and f">{label}</span>" in page
    assert '<progress class="boogie-progress" max="100" value="100"' in page
    assert "column-eta_display" in page


def test_progress_bar_and_eta_of_a_running_record(book):
    from django.utils import timezone

    from boogie_tasks.admin import eta_display, progress_display, status_badge

    record = tasks.count_pages.paused(book)
    now = timezone.now()
    record.status = "RUNNING"
    record.progress_current, record.progress_total = 25, 100
    record.progress_message = 'pages "<x>"'
    record.started_at = now - datetime.timedelta(seconds=50)
    record.heartbeat_at = now
    bar = progress_display(record)
    assert bar.startswith('<progress class="boogie-progress" max="100" value="25"')
    assert 'title="pages &quot;&lt;x&gt;&quot;"' in bar and bar.endswith("25 / 100 (25%)")
    assert eta_display(record) in {"2 min 30 s", "2 min 29 s"}
    record.progress_total = None
    assert progress_display(record).startswith('<progress class="boogie-progress" title=')
    record.cancel_requested = True
    assert "Running (cancelling)" in status_badge(record)
    record.status, record.progress_current = "PAUSED", 0
    assert progress_display(record) == "-" and eta_display(record) == "-"


def test_detail_shows_the_traceback_in_a_pre_block(admin_client, book, records):
    failed = tasks.explode.tasks(book).get()
    url = reverse("admin:boogie_tasks_taskrecord_change", args=[failed.pk])
    page = admin_client.get(url).content.decode()
    block = page.split('<pre class="boogie-traceback"', 1)[1].split("</pre>", 1)[0]
    assert "Traceback (most recent call last)" in block
    assert "RuntimeError: &lt;b&gt;bold&lt;/b&gt;" in block and "<b>" not in block
    assert f'href="/admin/testapp/book/{book.pk}/change/"' in page
    assert 'boogie-status-failed"' in page


def test_detail_shows_each_attempt_in_one_table_and_a_readable_error_help(
    admin_client, book, tmp_path
):
    from boogie_tasks.testing import run_pending

    record = tasks.flaky.delayed(book, str(tmp_path / "tries"), succeed_on=2)
    run_pending()  # the first attempt fails and is retried at once (no backoff)
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL and record.attempts == 2
    url = reverse("admin:boogie_tasks_taskrecord_change", args=[record.pk])
    page = admin_client.get(url).content.decode()
    table = page.split('<table class="boogie-attempts">', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tbody>", 1)[1].split("</tr>")[:-1]
    assert len(rows) == 2
    assert "FAILED" in rows[0] and "ConnectionError: attempt 1 failed" in rows[0]
    assert "SUCCESSFUL" in rows[1] and record.worker in rows[1]
    assert '"attempt":' not in page  # no raw JSON of the history
    # The error field's help text reads as text, not as HTML tags.
    assert "or why the run was canceled" in page and "<ExceptionType>" not in page


def test_inline_shows_progress_bars_and_badges(admin_client, book, records):
    page = admin_client.get(reverse("admin:testapp_book_change", args=[book.pk])).content.decode()
    assert '<progress class="boogie-progress" max="100" value="100"' in page
    assert page.count('class="boogie-status boogie-status-') == 3


# Actions


def _act(client, action: str, records, follow: bool = True):
    url = reverse("admin:boogie_tasks_taskrecord_changelist")
    data = {"action": action, "_selected_action": [str(r.pk) for r in records]}
    return client.post(url, data, follow=follow)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_actions_offered_and_djangos_delete_selected_is_not(admin_client, records):
    page = _changelist(admin_client)
    for action in ("run_paused", "cancel_records", "retry_records", "delete_finished"):
        assert f'value="{action}"' in page
    assert 'value="delete_selected"' not in page


def test_run_paused_runs_them_and_reports_failures(admin_client, book, records):
    broken = tasks.explode.paused(book, "<i>no</i>")
    done = tasks.count_pages.tasks(book).get()
    response = _act(admin_client, "run_paused", [records, broken, done])
    assert response.status_code == 200
    records.refresh_from_db()
    broken.refresh_from_db()
    assert records.status == TaskStatus.SUCCESSFUL and records.result["text"] == "Dune"
    assert broken.status == TaskStatus.FAILED
    assert _messages(response) == [
        f"{broken.task_name} record {broken.pk} failed: RuntimeError: <i>no</i>",
        "Ran 1 record successfully.",
        "Skipped 1 record that is not paused.",
    ]
    assert "RuntimeError: &lt;i&gt;no&lt;/i&gt;" in response.content.decode()


def test_cancel_action(admin_client, book, records):
    running = tasks.describe.paused(book)
    TaskRecord.objects.filter(pk=running.pk).update(status=TaskStatus.RUNNING)
    done = tasks.count_pages.tasks(book).get()
    response = _act(admin_client, "cancel_records", [records, running, done])
    records.refresh_from_db()
    running.refresh_from_db()
    assert records.status == TaskStatus.CANCELED
    assert running.status == TaskStatus.RUNNING and running.cancel_requested
    assert _messages(response) == [
        "Cancelled 1 record.",
        "Asked 1 running record to stop.",
        "1 record was already finished.",
    ]


def test_retry_action(admin_client, book, records, django_capture_on_commit_callbacks):
    failed = tasks.explode.tasks(book).get()
    with django_capture_on_commit_callbacks() as callbacks:
        response = _act(admin_client, "retry_records", [failed, records])
    assert len(callbacks) == 1
    new = tasks.explode.tasks(book).exclude(pk=failed.pk).get()
    assert (new.status, new.args) == (TaskStatus.READY, ["<b>bold</b>"])
    assert _messages(response) == [
        f"{records.task_name} record {records.pk} is PAUSED; only a finished "
        "(SUCCESSFUL, FAILED or CANCELED) record can be retried",
        "Retried 1 record: a new record is queued.",
    ]


def test_retry_action_reports_an_unknown_task(admin_client, book, records):
    failed = tasks.explode.tasks(book).get()
    TaskRecord.objects.filter(pk=failed.pk).update(task_name="gone.removed")
    response = _act(admin_client, "retry_records", [failed])
    (message,) = _messages(response)
    assert "no task named 'gone.removed' is registered" in message
    assert TaskRecord.objects.count() == 3


def test_delete_finished_keeps_unfinished_records(admin_client, book, records):
    response = _act(admin_client, "delete_finished", list(TaskRecord.objects.all()))
    assert list(TaskRecord.objects.all()) == [records]
    assert _messages(response) == [
        "Deleted 2 finished records.",
        "Kept 1 record that is not finished.",
    ]


def test_unfinished_record_cannot_be_deleted_from_its_page(admin_client, book, records):
    delete = reverse("admin:boogie_tasks_taskrecord_delete", args=[records.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    done = tasks.count_pages.tasks(book).get()
    url = reverse("admin:boogie_tasks_taskrecord_delete", args=[done.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not TaskRecord.objects.filter(pk=done.pk).exists()


def test_actions_need_permissions(client, book, records):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_taskrecord"))
    client.force_login(viewer)
    page = _changelist(client)
    assert page.count('class="field-task_name"') == 3 and 'value="retry_records"' not in page
    response = _act(client, "cancel_records", [records], follow=False)
    records.refresh_from_db()
    assert records.status == TaskStatus.PAUSED  # refused: no change permission
    viewer.user_permissions.add(Permission.objects.get(codename="change_taskrecord"))
    viewer = User.objects.get(pk=viewer.pk)  # drop the permission cache
    client.force_login(viewer)
    _act(client, "cancel_records", [records])
    records.refresh_from_db()
    assert records.status == TaskStatus.CANCELED
    assert response.status_code in (200, 302)


def test_the_list_names_objects_by_str_one_query_per_model_and_filters_used_models(
    admin_client, book
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.testapp.models import Book

    others = [Book.objects.create(title=f"Book {n}", pages=1) for n in range(5)]
    for obj in [book, *others]:
        tasks.describe.paused(obj)
    gone = Book.objects.create(title="Gone", pages=1)
    tasks.describe.paused(gone)
    gone_pk = gone.pk
    gone.delete()
    url = reverse("admin:boogie_tasks_taskrecord_changelist")
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url).content.decode()
    assert ">Dune</a>" in page and ">Book 4</a>" in page
    assert f">testapp.book {gone_pk}</a>" in page  # deleted: by model and pk
    book_reads = [q["sql"] for q in queries.captured_queries if '"testapp_book"' in q["sql"]]
    assert len(book_reads) == 1, book_reads  # the page's objects in one query
    distinct = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]
    assert not [sql for sql in distinct if "task_name" in sql or "content_type" in sql]
    # The model filter offers the models tasks ran for, not every content type.
    filters = page.split('id="changelist-filter"', 1)[1]
    assert "testapp | book" in filters and "auth | user" not in filters
    chosen = admin_client.get(url, {"content_type__id__exact": "x"})  # a bad value: ignored
    assert chosen.status_code == 200
