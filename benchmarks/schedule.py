"""Scheduled runs on a real ``celery beat`` and worker: start lateness, and 5,000 due at once.

Uses the test project (tests/settings.py): SQLite and the filesystem broker by
default; PostgreSQL and Redis with BOOGIE_TEST_DATABASE_URL and
BOOGIE_BENCH_BROKER_URL (e.g. redis://127.0.0.1:6379/3). Starts its own worker
(prefork, 2 processes) and beat, and stops them.

    python benchmarks/schedule.py [--spread 200] [--burst 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
_BROKER = os.environ.get("BOOGIE_BENCH_BROKER_URL", "filesystem://")
os.environ["BOOGIE_TEST_BROKER_URL"] = _BROKER
if _BROKER.startswith("filesystem://"):
    _folder = tempfile.mkdtemp(prefix="boogie-bench-broker-")
    os.makedirs(os.path.join(_folder, "control"))
    os.environ["BOOGIE_TEST_BROKER_FOLDER"] = _folder

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from boogie_tasks import TaskStatus  # noqa: E402
from boogie_tasks.models import TaskRecord  # noqa: E402
from tests.servers import Beat, Worker  # noqa: E402
from tests.testapp import tasks  # noqa: E402
from tests.testapp.models import Book  # noqa: E402


def wait_final(ids: list, timeout: float) -> float:
    """Poll until every record is final; return when the last one finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = TaskRecord.objects.filter(pk__in=ids).unfinished().count()
        if not left:
            return time.monotonic()
        time.sleep(0.25)
    raise SystemExit(f"{left} of {len(ids)} records not final after {timeout} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spread", type=int, default=200, help="records spread over 10 s")
    parser.add_argument("--burst", type=int, default=5000, help="records due in one second")
    options = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    connection.close()
    logs = Path(tempfile.mkdtemp(prefix="boogie-bench-"))
    env = {"BOOGIE_TEST_BROKER_URL": _BROKER}
    if "BOOGIE_TEST_BROKER_FOLDER" in os.environ:
        env["BOOGIE_TEST_BROKER_FOLDER"] = os.environ["BOOGIE_TEST_BROKER_FOLDER"]
    worker = Worker(env, logs / "worker.log", queues="celery", concurrency=2)
    beat = None
    try:
        worker.wait_ready()
        beat = Beat(env, logs / "beat.log")
        beat.wait_ready()
        book = Book.objects.create(title="Dune")
        marker = logs / "bodies.txt"

        # 1. Start lateness: runs spread over 10 s.
        import random

        offsets = [2 + random.random() * 10 for _ in range(options.spread)]
        spread = [tasks.describe.schedule(o, book, marker=str(marker)).pk for o in offsets]
        wait_final(spread, 120)
        rows = TaskRecord.objects.filter(pk__in=spread)
        late = [(r.started_at - r.run_at).total_seconds() for r in rows]
        statuses = {r.status for r in rows}

        # 2. A burst: many records due in the same second.
        due = 3.0
        with transaction.atomic():
            burst = [
                tasks.describe.schedule(due, book, marker=str(marker)).pk
                for _ in range(options.burst)
            ]
        started = time.monotonic()
        last = wait_final(burst, 600)
        rows = TaskRecord.objects.filter(pk__in=burst)
        burst_statuses = {r.status for r in rows}
        burst_late = [(r.started_at - r.run_at).total_seconds() for r in rows]
        attempts = max(r.attempts for r in rows)
    finally:
        if beat is not None:
            beat.stop()
        worker.stop()
    bodies = marker.read_text().splitlines()
    connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"database {connection.vendor}, broker {_BROKER.split(':')[0]}, worker prefork x2")
    print(f"start lateness of {options.spread} runs spread over 10 s (started_at - run_at):")
    print(
        f"  p50 {percentile(late, 0.5):.3f} s  p95 {percentile(late, 0.95):.3f} s  "
        f"p99 {percentile(late, 0.99):.3f} s  max {max(late):.3f} s  "
        f"statuses {sorted(statuses)}"
    )
    elapsed = last - started - due
    print(f"{options.burst} runs due in the same second:")
    print(
        f"  all final {elapsed:.1f} s after their run_at ({options.burst / elapsed:.0f} runs/s); "
        f"first start p50 lateness {statistics.median(burst_late):.2f} s; "
        f"statuses {sorted(burst_statuses)}; max attempts {attempts}"
    )
    expected = options.spread + options.burst
    once = len(bodies) == expected
    print(
        f"bodies run: {len(bodies)} for {expected} records ({'each once' if once else 'MISMATCH'})"
    )
    ok = once and statuses == burst_statuses == {TaskStatus.SUCCESSFUL}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
