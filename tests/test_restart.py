"""The database restarts, or goes away for 20 s, under a real worker and beat.

A PostgreSQL cluster of the test's own (never the machine's shared server) is
restarted with ``pg_ctl -m fast restart`` and stopped for real, while runs are
queued and running on a real ``celery worker`` (prefork, 4 processes) with
``CELERY_DB_REUSE_MAX`` set, as the README recommends. Bodies are counted in
marker files, outside the database under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import Cluster, binaries
from tests.servers import IN_CI, ROOT, Beat, Worker

SETTINGS = "tests.outage_settings"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        not os.environ.get("BOOGIE_TEST_DATABASE_URL"),
        reason="runs with the PostgreSQL suite (BOOGIE_TEST_DATABASE_URL)",
    ),
]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if binaries() is None:
        if IN_CI:
            pytest.fail("no PostgreSQL binaries (initdb): CI=true needs them")
        pytest.skip("no PostgreSQL binaries (initdb) on this machine")
    started = Cluster()
    started.start()
    try:
        yield started
    finally:
        started.destroy()


class Site:
    """A worker, a beat and a caller on the cluster, with a broker folder of their own."""

    def __init__(self, cluster: Cluster, folder: Path) -> None:
        self.cluster, self.folder = cluster, folder
        broker = folder / "broker"
        (broker / "control").mkdir(parents=True)
        self.env = {
            "BOOGIE_OUTAGE_DATABASE_URL": cluster.url,
            "BOOGIE_TEST_BROKER_URL": "filesystem://",
            "BOOGIE_TEST_BROKER_FOLDER": str(broker),
        }
        self._python("-m", "django", "migrate", "--noinput")
        self.processes = [
            Worker(
                self.env, folder / "worker.log", queues="celery", concurrency=4, settings=SETTINGS
            ),
            Beat(self.env, folder / "beat.log", settings=SETTINGS),
        ]
        for process in self.processes:
            process.wait_ready()

    def _python(self, *arguments: str) -> str:
        env = {
            **os.environ,
            **self.env,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        self.stderr = done.stderr
        return done.stdout

    def enqueue(self, count: int, marker: Path, seconds: float) -> list[str]:
        """Runs of ``chaos_slow``, one per new book, queued in one transaction."""
        output = self._python(
            "-m", "tests.outage_driver", "enqueue", str(count), str(marker), str(seconds)
        )
        return json.loads(output.strip().splitlines()[-1])

    def states(self, ids: list[str]) -> list[tuple]:
        return self.cluster.query(
            "SELECT id::text, status, attempts, result FROM boogie_tasks_taskrecord "
            "WHERE id::text = ANY(%s)", ids,
        )  # fmt: skip

    def wait_final(self, ids: list[str], timeout: float) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                rows = self.states(ids)
            except Exception:  # the database is still coming back
                rows = []
            if len(rows) == len(ids) and all(
                row[1] in ("SUCCESSFUL", "FAILED", "CANCELED") for row in rows
            ):
                return rows
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not final after {timeout} s: {Counter(r[1] for r in rows)}\n{self.logs()}"
                )
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-4000:]}" for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def site(cluster, tmp_path) -> Iterator[Site]:
    started = Site(cluster, tmp_path)
    try:
        yield started
    finally:
        started.stop()


def marks(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def wait_started(site: Site, marker: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sum(marks(Path(f"{marker}.start")).values()) < count:
        assert time.monotonic() < deadline, f"the bodies never started\n{site.logs()}"
        time.sleep(0.05)


def check_each_ran_once(rows: list[tuple], marker: Path) -> None:
    """Every run SUCCESSFUL with its result, and every body completed exactly once."""
    assert Counter(row[1] for row in rows) == {"SUCCESSFUL": len(rows)}, rows
    assert all(row[3] and row[3]["pk"] for row in rows), rows
    done = marks(marker)
    assert len(done) == len(rows) and set(done.values()) == {1}, done


def drain_time(site: Site, folder: Path, count: int = 20) -> float:
    started = time.monotonic()
    ids = site.enqueue(count, folder / "quick", 0.0)
    site.wait_final(ids, timeout=60)
    return time.monotonic() - started


def test_a_restart_leaves_nothing_stuck_and_loses_no_result(site, cluster, tmp_path):
    before = drain_time(site, tmp_path)
    marker = tmp_path / "slow"
    ids = site.enqueue(40, marker, 1.0)  # ten rounds of four
    wait_started(site, marker, 4)  # runs in flight, the rest queued
    cluster.restart()
    back = time.monotonic()
    rows = site.wait_final(ids, timeout=45)
    assert time.monotonic() - back <= 45
    check_each_ran_once(rows, marker)
    assert "database unreachable" in site.processes[0].output()  # met, and got over
    after = drain_time(
        site, tmp_path / "after" if (tmp_path / "after").mkdir() is None else tmp_path
    )
    assert after <= 2 * before + 2, (before, after)


def test_a_20_s_outage_leaves_nothing_stuck_and_loses_no_result(site, cluster, tmp_path):
    marker = tmp_path / "slow"
    ids = site.enqueue(16, marker, 1.0)
    wait_started(site, marker, 4)
    cluster.stop()
    time.sleep(20)
    cluster.start()
    rows = site.wait_final(ids, timeout=45)
    check_each_ran_once(rows, marker)
