"""The status API: JSON payload, permissions, caching and cancellation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord
from boogie_tasks.permissions import default_permission
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

CALLS: list[tuple[str, str, str]] = []


def only_readers(user, record, action) -> bool:
    """A project's own rule: users named "reader*" may see, nobody may cancel."""
    CALLS.append((getattr(user, "username", ""), str(record.pk), action))
    return action == "view" and getattr(user, "username", "").startswith("reader")


def status_url(record: TaskRecord | str) -> str:
    return reverse("boogie_tasks:status", args=[getattr(record, "pk", record)])


def cancel_url(record: TaskRecord | str) -> str:
    return reverse("boogie_tasks:cancel", args=[getattr(record, "pk", record)])


@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("owner", password="pw")


@pytest.fixture
def owner_client(client, owner) -> Client:
    client.force_login(owner)
    return client


@pytest.fixture
def record(book, owner) -> TaskRecord:
    return tasks.describe.using(owner=owner).paused(book)


def login(client: Client, username: str, *permissions: str, **flags) -> User:
    user = User.objects.create_user(username, password="pw", **flags)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return user


def set_state(record: TaskRecord, **values) -> TaskRecord:
    TaskRecord.objects.filter(pk=record.pk).update(**values)
    record.refresh_from_db()
    return record


# Payload


def test_url_names_and_paths(record):
    assert status_url(record) == f"/tasks/{record.pk}/"
    assert cancel_url(record) == f"/tasks/{record.pk}/cancel/"


def test_paused_record_is_pending_with_unknown_total(owner_client, record):
    data = owner_client.get(status_url(record)).json()
    assert data["id"] == str(record.pk)
    assert data["task"] == "tests.testapp.tasks.describe"
    assert data["status"] == "PAUSED"
    assert data["status_display"] == "Paused"
    assert data["complete"] is False
    assert data["success"] is None
    assert data["cancel_requested"] is False
    assert data["progress"] == {
        "pending": True,
        "current": 0,
        "total": None,
        "percent": 0.0,
        "description": "",
        "eta_seconds": None,
    }
    assert "result" not in data and "error" not in data and "traceback" not in data
    assert datetime.fromisoformat(data["created_at"]) == record.created_at
    assert data["run_at"] is None and data["started_at"] is None and data["finished_at"] is None


@pytest.mark.parametrize("state", [TaskStatus.SCHEDULED, TaskStatus.READY])
def test_waiting_records_are_pending(owner_client, record, state):
    run_at = timezone.now() + timedelta(minutes=5)
    set_state(record, status=state, run_at=run_at)
    data = owner_client.get(status_url(record)).json()
    assert data["status"] == state
    assert data["progress"]["pending"] is True
    assert data["complete"] is False and data["success"] is None
    assert datetime.fromisoformat(data["run_at"]) == run_at


def test_running_record_has_percent_and_eta(owner_client, record):
    now = timezone.now()
    set_state(
        record, status=TaskStatus.RUNNING, attempts=1, progress_current=3, progress_total=12,
        progress_message="counting", started_at=now - timedelta(seconds=6), heartbeat_at=now,
    )  # fmt: skip
    data = owner_client.get(status_url(record)).json()
    assert data["status"] == "RUNNING"
    assert data["complete"] is False and data["success"] is None
    progress = data["progress"]
    assert progress["pending"] is False
    assert (progress["current"], progress["total"], progress["percent"]) == (3, 12, 25.0)
    assert progress["description"] == "counting"
    # 3 units in 6 s: 9 units left take about 18 s.
    assert 16 <= progress["eta_seconds"] <= 18
    assert data["attempts"] == 1
    assert datetime.fromisoformat(data["started_at"]) == record.started_at


def test_successful_record_carries_its_result(owner_client, owner, book):
    tasks.count_pages.using(owner=owner).call(book)
    record = tasks.count_pages.tasks(book).get()
    data = owner_client.get(status_url(record)).json()
    assert data["status"] == "SUCCESSFUL"
    assert data["complete"] is True and data["success"] is True
    assert data["result"] == 5
    assert "error" not in data
    assert data["progress"]["percent"] == 100.0
    assert data["progress"]["current"] == data["progress"]["total"] == 5
    assert data["progress"]["eta_seconds"] == 0.0
    assert datetime.fromisoformat(data["finished_at"]) == record.finished_at


def test_successful_null_result_is_present(owner_client, record):
    set_state(record, status=TaskStatus.SUCCESSFUL, result=None, finished_at=timezone.now())
    data = owner_client.get(status_url(record)).json()
    assert "result" in data and data["result"] is None


def test_failed_record_carries_its_error_not_its_traceback(owner_client, owner, book):
    with pytest.raises(RuntimeError):
        tasks.explode.using(owner=owner).call(book, "<b>bold</b>")
    record = tasks.explode.tasks(book).get()
    assert record.traceback
    data = owner_client.get(status_url(record)).json()
    assert data["status"] == "FAILED"
    assert data["complete"] is True and data["success"] is False
    assert data["error"] == "RuntimeError: <b>bold</b>"
    # celery-progress front ends read the failure's text from "result".
    assert data["result"] == data["error"]
    assert "traceback" not in data and "Traceback" not in str(data)


def test_canceled_record(owner_client, record):
    record.cancel()
    data = owner_client.get(status_url(record)).json()
    assert data["status"] == "CANCELED"
    assert data["complete"] is True and data["success"] is False
    assert data["error"] == "Canceled"
    assert data["finished_at"] is not None


def test_celery_progress_keys_are_all_there(owner_client, record):
    data = owner_client.get(status_url(record)).json()
    assert {"complete", "success", "progress"} <= set(data)
    assert {"pending", "current", "total", "percent", "description"} <= set(data["progress"])
    assert isinstance(data["progress"]["percent"], float)


# Caching and methods


def test_answers_are_never_cached(owner_client, client, record):
    for response in (
        owner_client.get(status_url(record)),
        owner_client.get(status_url("00000000-0000-7000-8000-000000000000")),
        owner_client.post(cancel_url(record)),
    ):
        cache_control = response["Cache-Control"]
        for directive in ("no-cache", "no-store", "must-revalidate", "private", "max-age=0"):
            assert directive in cache_control, (response.status_code, cache_control)
        assert "Expires" in response


def test_status_is_get_only_and_cancel_post_only(owner_client, record):
    assert owner_client.post(status_url(record)).status_code == 405
    assert owner_client.get(cancel_url(record)).status_code == 405
    assert owner_client.head(status_url(record)).status_code == 200
    record.refresh_from_db()
    assert record.status == TaskStatus.PAUSED


def test_unknown_or_malformed_id_is_404(owner_client):
    response = owner_client.get(status_url("00000000-0000-7000-8000-000000000000"))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "No such task."}
    assert owner_client.get("/tasks/not-a-uuid/").status_code == 404
    response = owner_client.post(cancel_url("00000000-0000-7000-8000-000000000000"))
    assert response.status_code == 404


# Permissions


def test_anonymous_gets_404(client, record):
    assert client.get(status_url(record)).status_code == 404
    assert client.post(cancel_url(record)).status_code == 404
    record.refresh_from_db()
    assert record.status == TaskStatus.PAUSED


def test_other_user_gets_404_as_for_an_unknown_id(client, record):
    login(client, "someone")
    response = client.get(status_url(record))
    assert response.status_code == 404
    assert response.json() == {"detail": "No such task."}
    assert client.post(cancel_url(record)).status_code == 404


def test_owner_sees_and_cancels(owner_client, record):
    assert owner_client.get(status_url(record)).status_code == 200
    assert owner_client.post(cancel_url(record)).json()["canceled"] is True


def test_staff_see_but_cancel_only_with_the_change_permission(client, record):
    """One rule with the admin, whose cancel action takes the change permission too."""
    login(client, "staff", is_staff=True)
    assert client.get(status_url(record)).status_code == 200
    assert client.post(cancel_url(record)).status_code == 403
    record.refresh_from_db()
    assert record.status == TaskStatus.PAUSED
    login(client, "staff-changer", "change_taskrecord", is_staff=True)
    assert client.post(cancel_url(record)).json()["status"] == "CANCELED"


def test_inactive_staff_sees_nothing(client, record):
    user = login(client, "gone", is_staff=True)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(status_url(record)).status_code == 404


def test_view_permission_sees_but_may_not_cancel(client, record):
    login(client, "viewer", "view_taskrecord")
    assert client.get(status_url(record)).status_code == 200
    response = client.post(cancel_url(record))
    assert response.status_code == 403
    assert response.json() == {"detail": "You may not cancel this task."}
    record.refresh_from_db()
    assert record.status == TaskStatus.PAUSED


def test_change_permission_cancels(client, record):
    login(client, "changer", "change_taskrecord")
    assert client.get(status_url(record)).status_code == 200  # as in the admin
    assert client.post(cancel_url(record)).json()["status"] == "CANCELED"


def test_record_without_owner_is_for_staff_and_permissions_only(client, book):
    record = tasks.describe.paused(book)
    login(client, "someone")
    assert client.get(status_url(record)).status_code == 404
    client.force_login(User.objects.create_superuser("root", password="pw"))
    assert client.get(status_url(record)).status_code == 200


def test_custom_permission_function_replaces_the_default(client, settings, record, owner):
    settings.BOOGIE_TASKS_PERMISSION = "tests.test_views.only_readers"
    CALLS.clear()
    client.force_login(owner)
    assert client.get(status_url(record)).status_code == 404  # the owner is no reader
    login(client, "reader-1")
    assert client.get(status_url(record)).status_code == 200
    assert client.post(cancel_url(record)).status_code == 403
    assert CALLS == [
        ("owner", str(record.pk), "view"),
        ("reader-1", str(record.pk), "view"),
        ("reader-1", str(record.pk), "view"),
        ("reader-1", str(record.pk), "cancel"),
    ]
    anonymous = Client()
    assert anonymous.get(status_url(record)).status_code == 404
    assert CALLS[-1] == ("", str(record.pk), "view")


def test_custom_permission_may_be_a_callable(client, settings, record):
    settings.BOOGIE_TASKS_PERMISSION = lambda user, record, action: True
    assert client.get(status_url(record)).status_code == 200


def test_default_permission_refuses_unknown_actions(owner, record):
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        default_permission(owner, record, "delete")  # type: ignore[arg-type]


# Cancelling


@pytest.mark.parametrize("state", [TaskStatus.PAUSED, TaskStatus.READY, TaskStatus.SCHEDULED])
def test_cancel_of_a_waiting_record_cancels_it(owner_client, record, state):
    set_state(record, status=state)
    response = owner_client.post(cancel_url(record))
    assert response.status_code == 200
    data = response.json()
    assert data["canceled"] is True
    assert data["status"] == "CANCELED" and data["complete"] is True
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED and record.finished_at is not None


def test_cancel_of_a_running_record_asks_it_to_stop(owner_client, record):
    set_state(record, status=TaskStatus.RUNNING, attempts=1, started_at=timezone.now())
    data = owner_client.post(cancel_url(record)).json()
    assert data["canceled"] is True
    assert data["status"] == "RUNNING" and data["cancel_requested"] is True
    record.refresh_from_db()
    assert record.status == TaskStatus.RUNNING and record.cancel_requested


@pytest.mark.parametrize("state", [TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELED])
def test_cancel_of_a_final_record_leaves_it(owner_client, record, state):
    finished = timezone.now() - timedelta(minutes=1)
    set_state(record, status=state, finished_at=finished, result=7, error="")
    data = owner_client.post(cancel_url(record)).json()
    assert data["canceled"] is False
    assert data["status"] == state
    record.refresh_from_db()
    assert record.status == state and record.finished_at == finished


def test_cancel_needs_a_csrf_token(owner, record):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(cancel_url(record))
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.status == TaskStatus.PAUSED

    token = "t" * 32
    client.cookies["csrftoken"] = token
    response = client.post(cancel_url(record), headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELED


def test_status_needs_no_csrf_token(owner, record):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get(status_url(record)).status_code == 200
