"""Measuring the peers: the same work enqueued and run, timed end to end and alone."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

import boogie_tasks.runner
from benchproj import completion
from benchproj.celery_app import app
from benchproj.models import Item
from benchproj.tasks import bare_fetch, dcr_fetch, fetch_item
from benchproj.worker import BenchmarkError, Worker
from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord

BARE, DCR, BOOGIE = "bare celery", "django-celery-results", "boogie_tasks"
PAUSED = "paused"  # the mode of enqueue samples taken while the worker consumes nothing
AUTOCOMMIT, ATOMIC, BACKLOG = "autocommit", "atomic", "backlog"
STALL_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Peer:
    """One way of running the work: how to enqueue it, how to check it completed."""

    name: str
    enqueue: Callable[[Item], Any]
    completed: Callable[[], int | None]


def _boogie_completed() -> int:
    return TaskRecord.objects.filter(status=TaskStatus.SUCCESSFUL).count()


def _dcr_completed() -> int:
    return TaskResult.objects.filter(status="SUCCESS").count()


PEERS = (
    Peer(BARE, lambda item: bare_fetch.delay(item.pk), lambda: None),
    Peer(DCR, lambda item: dcr_fetch.delay(item.pk), _dcr_completed),
    Peer(BOOGIE, fetch_item.delayed, _boogie_completed),
)


# The database


def check_redis() -> None:
    """Fail early, and clearly, when the broker cannot be reached."""
    try:
        completion.client().ping()
    except Exception as exc:
        url = urlparse(settings.REDIS_URL)  # said without its password
        where = f"{url.hostname}:{url.port or 6379}{url.path}"
        raise BenchmarkError(f"Redis at {where} is not usable: {exc}") from exc


def create_database() -> None:
    """Create the benchmark's database afresh (dropping it first), then migrate it.

    Afresh, so that the tables always match the migrations of this checkout.
    """
    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"]}
    if db["PASSWORD"]:
        params["password"] = db["PASSWORD"]
    name = connection.ops.quote_name(db["NAME"])
    connection.close()
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        where = f"{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        raise BenchmarkError(f"cannot create the database {where}: {exc}") from exc
    call_command("migrate", verbosity=0, skip_checks=True)


def create_items(n: int) -> list[Item]:
    """Save n items, the objects the tasks fetch."""
    Item.objects.bulk_create([Item(name=f"item {i}", value=i) for i in range(n)], batch_size=1000)
    return list(Item.objects.order_by("pk"))


def reset_state() -> None:
    """Empty the queue, the counters and the tables the peers write to."""
    app.control.purge()
    completion.reset()
    tables = [TaskRecord._meta.db_table, TaskResult._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def queue_length() -> int:
    with app.connection_for_read() as conn:
        return conn.default_channel.client.llen(settings.QUEUE)


# Measuring


@dataclasses.dataclass
class Sample:
    peer: str
    mode: str  # a worker mode, or PAUSED for enqueue calls made while the worker was paused
    caller: str  # AUTOCOMMIT, ATOMIC, or BACKLOG (the worker alone draining a backlog)
    round: int
    enqueue: float = math.nan  # calls per second
    tasks: float = math.nan  # tasks per second
    worker_cpu: float = math.nan  # ms of CPU per task, the worker's processes (draining)
    db_cpu: float = math.nan  # ms of CPU per task, PostgreSQL's processes (draining)


def enqueue_all(peer: Peer, caller: str, items: list[Item]) -> float:
    """Enqueue one task per item; return the time.time() when the last message left."""
    enqueue = peer.enqueue
    if caller == ATOMIC:
        # The publishes of boogie_tasks happen at the commit: timed with the loop.
        with transaction.atomic():
            for item in items:
                enqueue(item)
    else:
        for item in items:
            enqueue(item)
    return time.time()


def wait_done(n: int, worker: Worker) -> float:
    """Wait until n tasks completed; return the time of the last completion."""
    seen, progressed = -1, time.monotonic()
    while True:
        done, failed, last = completion.read()
        if failed:
            raise BenchmarkError(f"{failed} task(s) failed on the worker:\n{worker.tail()}")
        if done >= n:
            time.sleep(0.05)  # a stray extra message would show up here
            done, failed, last = completion.read()
            if done != n or failed or last is None:
                raise BenchmarkError(f"expected {n} completions, counted {done} ({failed} failed)")
            return last
        if done != seen:
            seen, progressed = done, time.monotonic()
        elif time.monotonic() - progressed > STALL_TIMEOUT:
            raise BenchmarkError(
                f"stalled at {done}/{n} tasks for {STALL_TIMEOUT:.0f} s:\n{worker.tail()}"
            )
        if not worker.alive():
            raise BenchmarkError(f"the worker exited:\n{worker.tail()}")
        time.sleep(0.02)


def check_done(peer: Peer, n: int) -> None:
    """Check the peer's own record of the runs, and that nothing is left in the queue."""
    stored = peer.completed()
    if stored is not None and stored != n:
        raise BenchmarkError(f"{peer.name}: {stored} of {n} runs stored as successful")
    if queue_length():
        raise BenchmarkError(f"{peer.name}: messages left in the queue after the run")


def measure(peer: Peer, caller: str, items: list[Item], worker: Worker) -> tuple[float, float]:
    """Run the items through the peer while the worker consumes.

    Returns (enqueue calls/s, end-to-end tasks/s from the first enqueue to the
    last completion).
    """
    reset_state()
    connection.ensure_connection()
    started = time.time()
    enqueued = enqueue_all(peer, caller, items)
    last = wait_done(len(items), worker)
    check_done(peer, len(items))
    return len(items) / (enqueued - started), len(items) / (last - started)


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (from the state on)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu(pid: int, children: bool = False) -> float:
    """CPU seconds used by the process (and, with ``children``, by its reaped children)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def worker_cpu(pid: int) -> float:
    """CPU seconds used so far by a prefork worker: its master and its pool processes."""
    try:
        pool = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        pool = []
    return _cpu(pid, children=True) + sum(_cpu(int(child)) for child in pool)


def postgres_cpu() -> float:
    """CPU seconds used so far by the local PostgreSQL: its postmaster, with the backends
    it reaped, and every live process of it (the benchmark's server is on this machine)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            parent = int(_stat(int(entry.name))[1])
            postmaster = Path(f"/proc/{parent}/comm").read_text().strip() != "postgres"
        except (OSError, ValueError):
            continue
        total += _cpu(int(entry.name), children=postmaster)
    return total


def measure_backlog(
    peer: Peer, items: list[Item], worker: Worker
) -> tuple[float, float, float, float, float]:
    """Enqueue while the worker is paused, then let it drain the backlog.

    Half the items are enqueued in autocommit and half in one atomic block,
    each timed: the caller's own cost, with no worker competing for the CPU.
    Returns (enqueue calls/s autocommit, enqueue calls/s atomic, worker
    tasks/s from the resume to the last completion, and the CPU milliseconds
    per task of the worker's processes and of PostgreSQL's while draining).
    """
    reset_state()
    connection.ensure_connection()
    half = len(items) // 2
    worker.pause()
    # A blocking read the worker issued before the cancel may still take a message:
    # let it time out (kombu's Redis transport: brpop_timeout = 1 s).
    time.sleep(1.2)
    started = time.time()
    enqueued = enqueue_all(peer, AUTOCOMMIT, items[:half])
    autocommit = half / (enqueued - started)
    started = time.time()
    enqueued = enqueue_all(peer, ATOMIC, items[half:])
    atomic = (len(items) - half) / (enqueued - started)
    if completion.read()[0] or queue_length() != len(items):
        raise BenchmarkError(f"{peer.name}: the paused worker took messages")
    cpu = worker_cpu(worker.process.pid), postgres_cpu()
    resumed = time.time()
    worker.resume()
    last = wait_done(len(items), worker)
    used = worker_cpu(worker.process.pid) - cpu[0], postgres_cpu() - cpu[1]
    per_task = [seconds * 1000 / len(items) for seconds in used]
    check_done(peer, len(items))
    return autocommit, atomic, len(items) / (last - resumed), *per_task


def warm_up(worker: Worker, items: list[Item], backlog: bool) -> None:
    """Start every peer on the worker (imports, caches, connections); not measured."""
    deadline = time.monotonic() + 90
    reset_state()
    for peer in PEERS:
        peer.enqueue(items[0])
    while completion.read()[0] < len(PEERS):
        if not worker.alive() or time.monotonic() > deadline:
            raise BenchmarkError(f"the {worker.mode} worker did not start:\n{worker.tail()}")
        time.sleep(0.1)
    few = items[: min(len(items), 200)]
    for peer in PEERS:
        measure(peer, AUTOCOMMIT, few, worker)
        if backlog:
            measure_backlog(peer, few, worker)


def rotated(round_: int, caller: str) -> tuple[Peer, ...]:
    """Each peer once per round, in an order that rotates against drift."""
    shift = (round_ + [AUTOCOMMIT, ATOMIC, BACKLOG].index(caller)) % len(PEERS)
    return PEERS[shift:] + PEERS[:shift]


# Queries per run


def _sql(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def count_queries(item: Item) -> dict[str, tuple[list[str], list[str]]]:
    """The SQL of boogie_tasks runs, caller side and worker side, in this process.

    "first" is the first call of a fresh process (ContentType not cached yet),
    "next" every later one.
    """
    reset_state()
    report = {}
    for label in ("first", "next"):
        if label == "first":
            ContentType.objects.clear_cache()
        with CaptureQueriesContext(connection) as enqueue:
            record = fetch_item.paused(item)
        TaskRecord.objects.filter(pk=record.pk).update(status=TaskStatus.READY)
        if label == "first":
            ContentType.objects.clear_cache()  # as in a worker process of its own
        # The Celery task, run in-process with the request a worker gives it.
        boogie_tasks.runner.run.push_request(shadow=fetch_item.name)
        try:
            with CaptureQueriesContext(connection) as worker:
                boogie_tasks.runner.run(str(record.id))
        finally:
            boogie_tasks.runner.run.pop_request()
        record.refresh_from_db()
        if record.status != TaskStatus.SUCCESSFUL:
            raise BenchmarkError(f"the in-process run ended {record.status}: {record.error}")
        report[label] = (_sql(enqueue), _sql(worker))
    reset_state()
    return report
