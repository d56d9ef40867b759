"""The progress widget: the template tag, then progress.js in a real headless Chromium.

The browser tests drive Debian's ``chromium`` through Playwright against a live
server and a real worker. Without chromium or playwright they are skipped, and
fail under ``CI=true``. ``BOOGIE_WIDGET_SCREENSHOT=<file.png>`` saves a picture
of the demo's page (the one in the docs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client, RequestFactory, override_settings

import boogie_tasks
from boogie_tasks.models import TaskRecord
from tests.servers import IN_CI, ROOT
from tests.testapp import tasks
from tests.testapp.models import Book

CHROMIUM = os.environ.get("BOOGIE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STATIC_DIR = Path(boogie_tasks.__file__).resolve().parent / "static"
NOT_FOUND = "This task does not exist, or you may not see it."
# The browser tests need one worker, not one per broker: the widget reads the database.
ONE_WORKER = pytest.mark.parametrize("broker", ["filesystem"], indirect=True)
IN_BROWSER = pytest.mark.django_db(transaction=True)


STAFF = SimpleNamespace(is_authenticated=True, is_active=True, is_staff=True, pk=None)


def render(record: Any, arguments: str = "", user: Any = STAFF, **context: Any) -> str:
    """The tag rendered for a request of ``user`` (staff by default: may see every record)."""
    template = Template("{% load boogie_tasks %}{% task_progress record " + arguments + " %}")
    request = SimpleNamespace(user=user)
    return template.render(Context({"record": record, "request": request, **context}))


# The template tag


@pytest.mark.django_db
def test_tag_renders_the_records_state(book):
    tasks.count_pages.call(book)
    record = tasks.count_pages.tasks(book).get()
    html = render(record, "interval=250")
    assert f'data-boogie-task="{record.pk}"' in html
    assert f'data-status-url="/tasks/{record.pk}/"' in html
    assert 'data-interval="250"' in html
    assert 'data-status="SUCCESSFUL"' in html
    assert 'aria-valuenow="100.00"' in html and "width: 100.00%" in html
    assert ">Successful<" in html and ">100%<" in html
    assert '<div class="boogie-task__result">5</div>' in html
    assert 'src="/static/boogie_tasks/progress.js"' in html
    assert 'href="/static/boogie_tasks/progress.css"' in html
    assert "data-cancel-url" not in html and "boogie-task__cancel" not in html


@pytest.mark.django_db
def test_tag_shows_nothing_of_a_record_the_user_may_not_see(book):
    """The rule of GET tasks/<id>/: the first render must not leak what a poll would refuse."""
    from django.contrib.auth.models import AnonymousUser, User

    tasks.count_pages.call(book)
    record = tasks.count_pages.tasks(book).get()
    owner = User.objects.create_user("owner")
    TaskRecord.objects.filter(pk=record.pk).update(owner=owner)
    record.refresh_from_db()
    for user in (AnonymousUser(), User.objects.create_user("stranger"), None):
        html = render(record, user=user)
        assert "Successful" not in html and "100%" not in html, user
        assert 'class="boogie-task__result" hidden>' in html and ">5<" not in html
        assert 'data-status=""' in html and "data-complete" not in html  # polled: may say 404
    html = render(record, user=owner)
    assert ">Successful<" in html and ">5</div>" in html


@pytest.mark.django_db
def test_a_final_record_is_drawn_once_and_not_polled(book):
    tasks.count_pages.call(book)
    assert 'data-complete="true"' in render(tasks.count_pages.tasks(book).get())
    assert "data-complete" not in render(tasks.count_pages.paused(book))
    script = (STATIC_DIR / "boogie_tasks" / "progress.js").read_text()
    assert 'getAttribute("data-complete") === "true"' in script


@pytest.mark.django_db
def test_tag_escapes_errors_and_results(book):
    with pytest.raises(RuntimeError):
        tasks.explode.call(book, "<b>bold</b>")
    html = render(tasks.explode.tasks(book).get())
    assert "RuntimeError: &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>" not in html
    record = tasks.describe.paused(book)
    TaskRecord.objects.filter(pk=record.pk).update(status="SUCCESSFUL", result={"x": "<i>"})
    record.refresh_from_db()
    assert "{&quot;x&quot;:&quot;&lt;i&gt;&quot;}" in render(record)


@pytest.mark.django_db
def test_tag_without_total_is_indeterminate(book):
    html = render(tasks.describe.paused(book))
    assert "boogie-task__bar--indeterminate" in html
    assert "aria-valuenow" not in html
    assert ">Paused<" in html


def test_tag_takes_an_id_and_options():
    record_id = uuid.uuid4()
    request = RequestFactory().get("/")
    html = render(
        str(record_id), "cancel=True assets=False max_failures=3 interval=1",
        request=request, csrf_token="token-123",
    )  # fmt: skip
    assert f'data-status-url="/tasks/{record_id}/"' in html
    assert f'data-cancel-url="/tasks/{record_id}/cancel/"' in html
    assert 'data-csrf-token="token-123"' in html
    assert 'data-max-failures="3"' in html
    assert 'data-interval="50"' in html  # the least interval
    assert "progress.js" not in html and "progress.css" not in html
    assert "Loading…" in html and 'class="boogie-task__cancel"' in html


def test_tag_refuses_a_bad_id_and_a_missing_urlconf():
    with pytest.raises(ValueError):
        render("not-a-uuid")
    with override_settings(ROOT_URLCONF="tests.test_widget"):
        with pytest.raises(TemplateSyntaxError, match=r'include\("boogie_tasks.urls"\)'):
            render(uuid.uuid4())


urlpatterns: list = []  # an URLconf without the status API, for the test above


# In the browser


def missing(reason: str) -> None:
    """Skip the browser tests, or fail them under CI where the browser must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is missing: pip install -e '.[test]'")
    # Playwright's sync API keeps an event loop running in this thread for as long
    # as the browser lives; the ORM calls of the tests (and of pytest-django's
    # teardown) are plain synchronous code all the same.
    unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        browser = manager.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as exc:
        manager.stop()
        _restore("DJANGO_ALLOW_ASYNC_UNSAFE", unsafe)
        missing(f"{CHROMIUM} does not start: {exc}")
    yield browser
    browser.close()
    manager.stop()
    _restore("DJANGO_ALLOW_ASYNC_UNSAFE", unsafe)


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture
def user(transactional_db) -> User:
    return User.objects.create_user("watcher", password="pw")


@pytest.fixture
def page(browser, live_server, settings, user) -> Iterator[Any]:
    """A page logged in as ``user``, whose requests to the status API are counted."""
    # The live server serves /static/ from STATIC_ROOT when staticfiles is not installed.
    settings.STATIC_ROOT = str(STATIC_DIR)
    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies([{
        "name": django_settings.SESSION_COOKIE_NAME,
        "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }])  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.status_requests = []
    page.on(
        "request",
        lambda request: "/tasks/" in request.url and page.status_requests.append(request.url),
    )
    yield page
    context.close()


def open_bars(page: Any, *ids: Any, interval: int = 100, cancel: bool = False) -> None:
    query = "&".join(f"id={record_id}" for record_id in ids)
    page.goto(f"/progress/?{query}&interval={interval}&cancel={int(cancel)}")


def events(page: Any, name: str, record_id: Any = None) -> list[dict]:
    found = page.evaluate("window.boogieEvents")
    return [e for e in found if e["name"] == name and record_id in (None, str(e["id"]))]


def wait_for_events(page: Any, name: str, count: int, timeout: float = 30_000) -> None:
    page.wait_for_function(
        "([name, count]) => window.boogieEvents.filter(e => e.name === name).length >= count",
        arg=[name, count],
        timeout=timeout,
    )


def bar(page: Any, record_id: Any) -> Any:
    return page.locator(f'.boogie-task[data-boogie-task="{record_id}"]')


@IN_BROWSER
@ONE_WORKER
@pytest.mark.worker
def test_bars_follow_real_runs_to_their_end(browser, worker, page, user):
    book = Book.objects.create(title="Dune", pages=12)
    mine = tasks.count_pages.using(owner=user)
    counting = mine.delayed(book, delay=0.25)
    evil = "<b>bold</b> & <img src=x onerror=alert(1)>"
    failing = tasks.explode.using(owner=user).delayed(book, evil)
    unknown = uuid.uuid4()
    not_mine = tasks.describe.paused(book)  # no owner: the watcher may not see it

    open_bars(page, counting.pk, failing.pk, unknown, not_mine.pk)
    wait_for_events(page, "finished", 2)
    wait_for_events(page, "error", 2)

    # The bar moved: several steps between 0 and 100 %, never backwards, then 100 %.
    seen = events(page, "progress", str(counting.pk))
    percents = [event["detail"]["progress"]["percent"] for event in seen]
    assert len({p for p in percents if 0 < p < 100}) >= 2, percents
    assert percents == sorted(percents) and percents[-1] == 100.0
    done = bar(page, counting.pk)
    assert done.get_attribute("data-status") == "SUCCESSFUL"
    assert done.locator(".boogie-task__fill").evaluate("node => node.style.width") == "100%"
    assert done.locator(".boogie-task__bar").get_attribute("aria-valuenow") == "100"
    assert done.locator(".boogie-task__status").text_content() == "Successful"
    assert done.locator(".boogie-task__percent").text_content() == "100%"
    assert done.locator(".boogie-task__result").text_content() == "12"
    assert done.locator(".boogie-task__result").is_visible()
    assert not done.locator(".boogie-task__error").is_visible()
    [finished] = events(page, "finished", str(counting.pk))
    assert finished["detail"]["result"] == 12 and finished["detail"]["success"] is True

    # The failure shows its error as text: the markup in it is not markup.
    failed = bar(page, failing.pk)
    error = failed.locator(".boogie-task__error")
    assert error.text_content() == f"RuntimeError: {evil}"
    assert error.is_visible()
    assert failed.locator("b, img").count() == 0
    assert failed.get_attribute("data-status") == "FAILED"
    assert failed.locator(".boogie-task__status").text_content() == "Failed"

    # An unknown id and someone else's record give the same clear message.
    for record_id in (unknown, not_mine.pk):
        lost = bar(page, record_id)
        assert lost.locator(".boogie-task__error").text_content() == NOT_FOUND
        assert lost.get_attribute("data-state") == "error"
        assert [e["detail"]["status"] for e in events(page, "error", str(record_id))] == [404]

    # Final states and 404s stop the polling.
    asked = len(page.status_requests)
    page.wait_for_timeout(800)
    assert len(page.status_requests) == asked


@IN_BROWSER
def test_bar_gives_up_after_repeated_network_failures(page, user, book):
    record = tasks.describe.using(owner=user).paused(book)
    tries = []

    def fail(route: Any) -> None:
        tries.append(route.request.url)
        route.abort("connectionrefused")

    page.route("**/tasks/**", fail)
    open_bars(page, record.pk, interval=50)
    wait_for_events(page, "error", 1)
    assert len(tries) == 5  # data-max-failures, with a growing pause between tries
    lost = bar(page, record.pk)
    assert lost.locator(".boogie-task__error").text_content() == (
        "Lost contact with the server; progress is no longer updated."
    )
    assert events(page, "error")[0]["detail"]["status"] == 0
    page.wait_for_timeout(500)
    assert len(tries) == 5


@IN_BROWSER
def test_bar_gets_over_a_few_server_errors(page, user, book):
    record = tasks.describe.using(owner=user).paused(book)
    answers = iter([500, 502])

    def flaky(route: Any) -> None:
        status = next(answers, None)
        if status is None:
            route.continue_()
        else:
            route.fulfill(status=status, body="<h1>Server Error</h1>", content_type="text/html")

    page.route("**/tasks/**", flaky)
    open_bars(page, record.pk, interval=50)
    wait_for_events(page, "progress", 2)
    paused = bar(page, record.pk)
    assert paused.locator(".boogie-task__status").text_content() == "Paused"
    assert not paused.locator(".boogie-task__error").is_visible()
    assert events(page, "error") == []


@IN_BROWSER
def test_bar_backs_off_while_the_tab_is_hidden(page, user, book):
    record = tasks.describe.using(owner=user).paused(book)
    # Headless tabs are always visible: pretend, as a browser does for a background tab.
    page.add_init_script(
        "window.__hidden = true;"
        "Object.defineProperty(document, 'hidden', {get: () => window.__hidden});"
    )
    open_bars(page, record.pk, interval=50)
    page.wait_for_timeout(1000)
    assert len(page.status_requests) <= 1, page.status_requests
    page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(1000)
    assert len(page.status_requests) >= 5, page.status_requests
    assert bar(page, record.pk).locator(".boogie-task__status").text_content() == "Paused"


@IN_BROWSER
def test_cancel_button_cancels_with_the_csrf_token(page, user, book):
    record = tasks.describe.using(owner=user).paused(book)
    open_bars(page, record.pk, interval=100, cancel=True)
    wait_for_events(page, "progress", 1)
    button = bar(page, record.pk).locator(".boogie-task__cancel")
    assert button.is_visible()
    button.click()
    wait_for_events(page, "finished", 1)
    record.refresh_from_db()
    assert record.status == "CANCELED"
    canceled = bar(page, record.pk)
    assert canceled.locator(".boogie-task__status").text_content() == "Canceled"
    assert not canceled.locator(".boogie-task__error").is_visible()  # said once, by the status
    assert not button.is_visible()


@IN_BROWSER
def test_bars_added_later_are_followed_with_init(page, user, book):
    record = tasks.describe.using(owner=user).paused(book)
    open_bars(page)
    html = render(record, "assets=False interval=50")
    page.evaluate(
        "html => { const box = document.createElement('div'); box.innerHTML = html;"
        " document.body.appendChild(box); window.BoogieTasks.init(box); }",
        html,
    )
    wait_for_events(page, "progress", 2)
    assert {e["id"] for e in events(page, "progress")} == {str(record.pk)}


# The demo's web page (make demo-web)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_web(tmp_path) -> Iterator[str]:
    """``examples/demo/run_web.py`` running on a free port; its base URL."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env["BOOGIE_DEMO_VAR"] = str(tmp_path / "var")
    log = tmp_path / "run_web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "demo" / "run_web.py"), "--port", str(port)],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"run_web.py did not serve:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    yield url
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # Ctrl-C: runserver ends, the worker is stopped
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert "Worker stopped (exit code 0)" in text, text[-3000:]


@pytest.mark.worker
def test_demo_web_page_starts_runs_and_shows_their_bars(browser, demo_web):
    context = browser.new_context(base_url=demo_web, viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto("/")
        assert "No runs yet" in page.content()

        def start(product: str, action: str) -> None:
            page.click(f'button[data-product="{product}"][data-action="{action}"]')
            page.wait_for_load_state()

        start("Kettle", "slow")
        start("Toaster", "reprice")
        start("Teapot", "summarize")
        assert page.locator(".boogie-task").count() == 3
        page.wait_for_function(
            "() => document.querySelectorAll('.boogie-task[data-status=SUCCESSFUL],"
            " .boogie-task[data-status=FAILED]').length === 2"
        )
        done = page.locator(".boogie-task[data-status=SUCCESSFUL] .boogie-task__result")
        assert json.loads(done.text_content()) == {"reviews": 10, "average": 4.2}
        failed = page.locator(".boogie-task[data-status=FAILED] .boogie-task__error")
        assert "Toaster is discontinued" in failed.text_content()
        slow = page.locator(".boogie-task").last  # newest first: the first started is last
        page.wait_for_function(
            "bar => parseFloat(bar.querySelector('.boogie-task__fill').style.width) >= 10",
            arg=slow.element_handle(),
        )
        assert page.locator("#summary").text_content() == "2 of 3 runs finished"
        if os.environ.get("BOOGIE_WIDGET_SCREENSHOT"):
            page.wait_for_timeout(500)  # the bars' width transition
            page.screenshot(path=os.environ["BOOGIE_WIDGET_SCREENSHOT"], full_page=True)

        # The running one stops at its next progress call once cancelled.
        slow.locator(".boogie-task__cancel").click()
        page.wait_for_function(
            "bar => bar.getAttribute('data-status') === 'CANCELED'",
            arg=slow.element_handle(),
        )
        assert page.locator("#summary").text_content() == "3 of 3 runs finished"
    finally:
        context.close()


@pytest.mark.django_db
def test_tag_draws_the_eta_at_once_no_stale_message_and_canceled_once(book):
    import datetime

    from django.utils import timezone

    record = tasks.count_pages.paused(book)
    now = timezone.now()
    TaskRecord.objects.filter(pk=record.pk).update(
        status="RUNNING", progress_current=1, progress_total=5, progress_message="page 1",
        started_at=now - datetime.timedelta(seconds=10), heartbeat_at=now,
    )  # fmt: skip
    record.refresh_from_db()
    html = render(record)
    assert 'class="boogie-task__eta">about 40 s left<' in html  # before any poll
    assert ">page 1<" in html
    TaskRecord.objects.filter(pk=record.pk).update(status="SUCCESSFUL", result=5)
    record.refresh_from_db()
    html = render(record)
    assert ">page 1<" not in html  # a finished run's last message is gone
    assert 'class="boogie-task__eta"><' in html
    canceled = tasks.describe.paused(book)
    canceled.cancel()
    drawn = render(canceled).split('<script type="application/json"')[0]  # not the data
    assert drawn.count("Canceled") == 1, drawn  # the status says it; no error repeats it
    reasoned = tasks.describe.paused(book)
    reasoned.cancel(reason="not needed")
    assert "Canceled: not needed" in render(reasoned)
    script = (STATIC_DIR / "boogie_tasks" / "progress.js").read_text()
    assert 'error === label ? "" : error' in script
    assert 'data.status === "SUCCESSFUL" ? "" : progress.description' in script
