"""Tasks of the test project; worker processes find them by autodiscovery."""

import os
import time
from pathlib import Path

from boogie_tasks import TaskFailed, progress, task
from tests.testapp.models import Book


def _mark(path: str | None, text: str) -> None:
    # A side effect outside the database under test, to count bodies that ran.
    if path:
        with open(path, "a") as handle:
            handle.write(text + "\n")


@task
def describe(obj, suffix="", marker=None):
    _mark(marker, str(obj.pk))
    return {"pk": str(obj.pk), "text": f"{obj}{suffix}", "pid": os.getpid()}


@task
def count_pages(book: Book, delay=0.0):
    for _ in progress(range(book.pages), message="counting"):
        time.sleep(delay)
    return book.pages


@task
def explode(obj, message="boom"):
    raise RuntimeError(message)


@task
def refuse(obj):
    raise TaskFailed("nothing to do for this one")


@task
def not_json(obj):
    return {"when": object()}


@task(queue="other")
def on_other_queue(obj):
    return "other"


@task
def routed(obj):
    return "routed"


@task(name="custom.name")
def renamed(obj):
    return "renamed"


@task
def wait_for_file(obj, path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        progress.advance()
        time.sleep(0.05)
    return "released"


@task
def break_transaction(obj):
    from tests.testapp.models import Tag

    Tag.objects.create(slug="dup")
    Tag.objects.create(slug="dup")  # IntegrityError: a broken transaction on PostgreSQL


@task
def sleep_until(obj, path, timeout=20.0):
    """Wait without reporting progress: only the heartbeat thread writes."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "woke"


@task(retries=2, retry_backoff=0)
def flaky(obj, marker, succeed_on=3):
    """Fail until the ``succeed_on``-th attempt; count attempts in a file."""
    _mark(marker, "try")
    tries = len(Path(marker).read_text().splitlines())
    if tries < succeed_on:
        raise ConnectionError(f"attempt {tries} failed")
    return tries


@task(retries=3, retry_on=(ConnectionError,))
def picky(obj):
    raise ValueError("not worth retrying")


@task(unique=True)
def only_one(obj, note=""):
    return note


@task(unique="args")
def one_per_args(obj, note=""):
    return note


@task(cache_for=60)
def cached(obj, n):
    return {"n": n, "pid": os.getpid(), "t": time.time()}


@task(soft_time_limit=1)
def too_slow(obj):
    time.sleep(5)
    return "never"


# The chaos tests (tests/test_chaos.py): a body that takes a while, without
# progress writes (only the heartbeat thread keeps it alive), and leaves one line
# in ``<marker>.start`` when it starts and one in ``marker`` when it completes.


def _slow_body(obj, marker, seconds):
    _mark(marker + ".start", str(obj.pk))
    time.sleep(seconds)
    _mark(marker, str(obj.pk))
    return {"pk": str(obj.pk), "pid": os.getpid()}


@task
def chaos_slow(obj, marker, seconds=3.0):
    return _slow_body(obj, marker, seconds)


@task(retries=1, retry_backoff=0)
def chaos_slow_retried(obj, marker, seconds=3.0):
    return _slow_body(obj, marker, seconds)


@task
def echo(obj, value=None, message=""):
    """Return ``value``; with a message, fail on purpose (TaskFailed) with it."""
    if message:
        progress.set(0, 1, message)
        raise TaskFailed(message)
    return value


@task
def lose_connection(obj, value=None):
    """Have the database end this process's connection, then return: the finish meets it."""
    from django.db import connection

    from tests.servers import terminate_backend

    terminate_backend(connection)
    return value
