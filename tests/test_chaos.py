"""Chaos: real worker, beat and broker processes are killed, stopped and restarted.

Every test checks the guarantees: each record ends in a final state, no body
runs to completion twice (counted in marker files, outside the database under
test), and the errors say what happened. The workers and beats run with
``tests.chaos_settings``: heartbeats every 0.5 s, a run lost after 3 s, an
unclaimed READY record published again after 2 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from boogie_tasks import TaskStatus
from boogie_tasks.models import TaskRecord
from boogie_tasks.publishing import publish
from tests.servers import IN_CI, Beat, Worker, reset_broker, use_broker
from tests.testapp import tasks
from tests.testapp.models import Book

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SETTINGS = "tests.chaos_settings"
STALE_AFTER = 3  # as in tests.chaos_settings
WORKER_LOST = (
    "WorkerLost: the worker running this record stopped sending heartbeats "
    f"for over {STALE_AFTER} s"
)


class Servers:
    """The processes one test starts; all of them are stopped when it ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Worker] = []
        self.redis: subprocess.Popen | None = None

    def worker(self, env: dict[str, str], name: str) -> Worker:
        log = self.folder / f"{name}.log"
        process = Worker(env, log, queues="celery", concurrency=2, settings=SETTINGS)
        self.started.append(process)
        process.wait_ready()
        return process

    def beat(self, env: dict[str, str], name: str) -> Beat:
        process = Beat(env, self.folder / f"{name}.log", settings=SETTINGS)
        self.started.append(process)
        process.wait_ready()
        return process

    def start_redis(self, port: int) -> None:
        assert self.redis is None or self.redis.poll() is not None
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.redis = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                assert self.redis.poll() is None, f"redis-server on port {port} exited"
                assert time.monotonic() < deadline, f"redis-server on port {port} never listened"
                time.sleep(0.05)

    def stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {process.log.name}\n{process.output()[-3000:]}" for process in self.started
        )

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.stop_redis()


@pytest.fixture
def servers(tmp_path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop()
        reset_broker()


def filesystem_broker(folder: Path) -> dict[str, str]:
    """A broker folder of the test's own; this process publishes to it too."""
    folder.mkdir()
    (folder / "control").mkdir()
    use_broker(
        "filesystem://",
        {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        },
    )
    return {"BOOGIE_TEST_BROKER_URL": "filesystem://", "BOOGIE_TEST_BROKER_FOLDER": str(folder)}


def wait_final(records: list[TaskRecord], servers: Servers, timeout: float) -> None:
    """Poll until every record is final; fail with their states and the logs if not."""
    ids = [record.pk for record in records]
    final = list(TaskStatus.final())
    deadline = time.monotonic() + timeout
    while TaskRecord.objects.filter(pk__in=ids).exclude(status__in=final).exists():
        if time.monotonic() > deadline:
            states = list(
                TaskRecord.objects.filter(pk__in=ids).values_list("pk", "status", "attempts")
            )
            pytest.fail(f"not final after {timeout} s: {states}\n{servers.logs()}")
        time.sleep(0.1)
    for record in records:
        record.refresh_from_db()


def wait_status(record: TaskRecord, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while TaskRecord.objects.get(pk=record.pk).status != status:
        assert time.monotonic() < deadline, f"record {record.pk} never became {status}"
        time.sleep(0.05)
    record.refresh_from_db()


def wait_marked(path: Path, objects: list[Book], timeout: float = 20) -> None:
    """Wait until each object's body wrote to the marker file."""
    deadline = time.monotonic() + timeout
    while not all(marks(path)[str(obj.pk)] for obj in objects):
        assert time.monotonic() < deadline, f"the bodies never wrote to {path}"
        time.sleep(0.05)


def marks(path: Path) -> Counter[str]:
    """How many times each object's body wrote to the marker file."""
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def books(count: int) -> list[Book]:
    return [Book.objects.create(title=f"book {i}") for i in range(count)]


# Processes, by pid


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (the worker's pool), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


def kill_worker(worker: Worker) -> list[int]:
    """SIGKILL the worker's main process and its pool, nothing else; return their pids."""
    main = worker.process.pid
    pids = [main, *descendants(main)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "the killed worker's processes still run"
        time.sleep(0.05)
    return pids


# 1. A worker killed with runs in flight


def test_sigkill_of_a_worker_with_runs_in_flight(servers, tmp_path):
    env = filesystem_broker(tmp_path / "broker")
    first = servers.worker(env, "worker-1")
    done = tmp_path / "done"
    objects = books(5)
    retried = tasks.chaos_slow_retried.delayed(objects[0], str(done), seconds=4)
    lost = tasks.chaos_slow.delayed(objects[1], str(done), seconds=4)
    # Reserved by the first worker, or still in the broker, when it dies.
    waiting = [tasks.chaos_slow.delayed(obj, str(done), seconds=0.2) for obj in objects[2:]]
    wait_status(retried, TaskStatus.RUNNING)
    wait_status(lost, TaskStatus.RUNNING)
    # RUNNING is written by the claim, before the body: kill once both bodies began.
    wait_marked(Path(f"{done}.start"), [objects[0], objects[1]])

    killed = kill_worker(first)
    assert {int(r.worker.rsplit(":", 1)[1]) for r in (retried, lost)} <= set(killed)
    servers.worker(env, "worker-2")
    servers.beat(env, "beat")
    everything = [retried, lost, *waiting]
    wait_final(everything, servers, timeout=40)

    # Attempts remained: tried again on the new worker, the loss kept in the history.
    assert retried.status == TaskStatus.SUCCESSFUL, retried.error
    assert retried.attempts == 2 and retried.error == ""
    assert [entry.get("error") for entry in retried.history] == [WORKER_LOST, None]
    assert [entry["status"] for entry in retried.history] == ["FAILED", "SUCCESSFUL"]
    assert retried.history[0]["worker"] != retried.history[1]["worker"]
    # No attempt left: FAILED, saying why.
    assert lost.status == TaskStatus.FAILED
    assert lost.error == WORKER_LOST and lost.attempts == 1 and lost.finished_at
    for record in waiting:
        assert record.status == TaskStatus.SUCCESSFUL, record.error
        assert record.attempts == 1
    started, completed = marks(Path(f"{done}.start")), marks(done)
    # The killed bodies started and never completed; none completed twice.
    assert started[str(objects[0].pk)] == 2 and started[str(objects[1].pk)] == 1
    assert completed == Counter({str(obj.pk): 1 for obj in objects if obj != objects[1]})


# 2. The broker stopped and started again around .delayed()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_broker_stopped_and_restarted_around_delayed(servers, tmp_path):
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH: this test starts and stops its own Redis"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {"BOOGIE_TEST_BROKER_URL": url}
    servers.start_redis(port)
    use_broker(url)
    servers.worker(env, "worker")
    servers.beat(env, "beat")
    done = tmp_path / "done"
    before, during, refused = books(3)
    # The way through works before the broker goes away.
    assert tasks.describe.delayed(before, marker=str(done)).wait(timeout=30).attempts == 1

    servers.stop_redis()
    started = time.monotonic()
    record = tasks.describe.delayed(during, "!", marker=str(done))
    took = time.monotonic() - started
    assert took < 5, f".delayed() took {took:.1f} s with the broker down"
    record.refresh_from_db()
    # The record waits, says why, and is marked never published (the outbox).
    assert record.status == TaskStatus.READY and record.queued_at is None
    assert record.error.startswith("BrokerUnavailable: "), record.error
    assert str(port) in record.error, record.error

    started = time.monotonic()
    failed = tasks.describe.using(on_broker_error="fail").delayed(refused, marker=str(done))
    assert time.monotonic() - started < 5
    assert failed.status == TaskStatus.FAILED
    failed.refresh_from_db()
    assert failed.status == TaskStatus.FAILED and failed.finished_at
    assert failed.error.startswith("BrokerUnavailable: ") and str(port) in failed.error

    servers.start_redis(port)  # the same port: worker and beat reconnect
    wait_final([record], servers, timeout=45)
    assert record.status == TaskStatus.SUCCESSFUL, record.error
    assert record.attempts == 1 and record.error == ""
    assert record.result["text"] == f"{during}!"
    time.sleep(0.5)  # a duplicate would be dropped; the failed one never runs
    failed.refresh_from_db()
    assert failed.status == TaskStatus.FAILED and failed.attempts == 0
    assert marks(done) == Counter({str(before.pk): 1, str(during.pk): 1})


# 3. The same message twice


def test_the_same_message_twice_runs_once(servers, tmp_path):
    env = filesystem_broker(tmp_path / "broker")
    worker = servers.worker(env, "worker")
    done = tmp_path / "done"
    objects = books(4)
    records = [tasks.chaos_slow.paused(obj, str(done), seconds=0.5) for obj in objects]
    for record in records:
        record.enqueue()  # the first message
        assert publish(record)  # the same message again, side by side in the queue
    wait_final(records, servers, timeout=30)
    for record in records:
        assert record.status == TaskStatus.SUCCESSFUL, record.error
        assert record.attempts == 1
    # No second body started, let alone completed.
    expected = Counter({str(obj.pk): 1 for obj in objects})
    assert marks(Path(f"{done}.start")) == expected and marks(done) == expected
    deadline = time.monotonic() + 10
    while worker.output().count("dropped message") < len(records):
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.1)


# 4. Beat restarted with records scheduled


def test_beat_restarted_with_records_scheduled(servers, tmp_path):
    env = filesystem_broker(tmp_path / "broker")
    servers.worker(env, "worker")
    first = servers.beat(env, "beat-1")
    done = tmp_path / "done"
    objects = books(20)
    started = time.monotonic()
    records = [
        tasks.describe.schedule(2 + 4 * i / (len(objects) - 1), obj, marker=str(done))
        for i, obj in enumerate(objects)
    ]
    time.sleep(max(0.0, started + 2 - time.monotonic()))
    first.stop()
    time.sleep(max(0.0, started + 4 - time.monotonic()))
    servers.beat(env, "beat-2")
    wait_final(records, servers, timeout=30)
    for record in records:
        assert record.status == TaskStatus.SUCCESSFUL, record.error
        assert record.attempts == 1 and record.started_at >= record.run_at
    assert marks(done) == Counter({str(obj.pk): 1 for obj in objects})
