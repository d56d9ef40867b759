"""Overhead of progress reporting: a million progress.advance() calls, with and without.

Runs a task through the real runner (claim, execute, finish) on the test project's
database (SQLite by default; BOOGIE_TEST_DATABASE_URL for PostgreSQL), alternating
the loop with and without progress calls, and reports the slowdown and the number
of UPDATEs per second of run time.

    python benchmarks/progress.py [-n 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from boogie_tasks import TaskStatus, progress, task  # noqa: E402
from boogie_tasks.runner import execute  # noqa: E402
from boogie_tasks.transitions import claim  # noqa: E402
from tests.testapp.models import Book  # noqa: E402

ROW = {"id": 1, "title": "Dune", "pages": 412, "tags": ["sf", "classic"]}


def light(i: int) -> int:
    """About 0.1 µs: hardly any work between two progress calls."""
    return len(ROW["tags"]) + ROW["pages"] % (i % 7 + 1)


def row(i: int) -> int:
    """About 2 µs: what handling one small row (a dict to JSON) costs."""
    return len(json.dumps(ROW))


BODIES = {"light": light, "row": row}


@task
def plain_loop(book, n, work):
    body, total = BODIES[work], 0
    for i in range(n):
        total += body(i)
    return total


@task
def advance_loop(book, n, work):
    body, total = BODIES[work], 0
    for i in range(n):
        total += body(i)
        progress.advance()
    return total


@task
def iterate_loop(book, n, work):
    body, total = BODIES[work], 0
    for i in progress(range(n)):
        total += body(i)
    return total


def timed(fn, book, n, work) -> tuple[float, int]:
    """Run one record of ``fn`` through the runner; return seconds and UPDATEs."""
    record = fn.paused(book, n, work)
    claimed = claim(record.pk, worker="bench:1", waiting=True)
    updates = 0

    def count(execute_sql, sql, params, many, context):
        nonlocal updates
        updates += sql.lstrip().upper().startswith("UPDATE")
        return execute_sql(sql, params, many, context)

    with connection.execute_wrapper(count):
        started = time.perf_counter()
        execute(claimed)
        elapsed = time.perf_counter() - started
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL, record.error
    return elapsed, updates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    from django.test.utils import setup_test_environment

    setup_test_environment()
    # The default interval, not the test project's short one.
    from django.conf import settings

    settings.BOOGIE_TASKS_PROGRESS_INTERVAL = 1
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        call_command("migrate", verbosity=0)
        book = Book.objects.create(title="Dune")
        loops = {"plain": plain_loop, "advance": advance_loop, "iterate": iterate_loop}
        results: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for _ in range(options.rounds):
            for work in BODIES:
                for name, fn in loops.items():  # alternate, so drift hits all alike
                    results.setdefault((work, name), []).append(timed(fn, book, options.n, work))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    print(f"{options.n:,} iterations, {options.rounds} rounds, median times, {connection.vendor}")
    print(f"{'body':<7}{'loop':<26}{'seconds':>9}{'vs plain':>10}{'ns/call':>9}{'UPDATEs':>9}")
    for work in BODIES:
        base = statistics.median(t for t, _ in results[(work, "plain")])
        for name, label in [
            ("plain", "no progress"),
            ("advance", "progress.advance()"),
            ("iterate", "for x in progress(...)"),
        ]:
            seconds = statistics.median(t for t, _ in results[(work, name)])
            writes = statistics.median(u for _, u in results[(work, name)])
            per_call = (seconds - base) / options.n * 1e9
            print(
                f"{work:<7}{label:<26}{seconds:>9.3f}{seconds / base:>9.2f}x"
                f"{per_call:>9.0f}{writes:>9.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
