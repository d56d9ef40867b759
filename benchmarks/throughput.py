"""Throughput of boogie_tasks against bare Celery and django-celery-results, side by side.

Every peer does the same trivial work (fetch one row by pk, return a small
dict) on one real ``celery worker`` (prefork, 2 processes), Redis broker,
PostgreSQL. The peers alternate over several rounds, with the worker's
database connections as Celery leaves them out of the box and reused for
every peer alike (CELERY_DB_REUSE_MAX), and with two callers: autocommit, and
one ``transaction.atomic()`` as in a view under ATOMIC_REQUESTS.

    python benchmarks/throughput.py [-n N] [--rounds R] [--quick] [--mode M] [--strict]

Environment: BOOGIE_BENCH_DATABASE_URL, BOOGIE_BENCH_REDIS_URL (see
benchproj/settings.py). Exits 1 when a measurement fails (a task not
completed or failed, the worker gone), 3 with ``--strict`` when a target is
missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchproj from here, boogie_tasks from this checkout (before any installed copy).
sys.path[:0] = [str(HERE), str(ROOT)]
os.environ["DJANGO_SETTINGS_MODULE"] = "benchproj.settings"

import django  # noqa: E402

django.setup()

from benchproj.measure import (  # noqa: E402
    ATOMIC,
    AUTOCOMMIT,
    BACKLOG,
    PAUSED,
    Sample,
    check_redis,
    count_queries,
    create_database,
    create_items,
    measure,
    measure_backlog,
    rotated,
    warm_up,
)
from benchproj.report import (  # noqa: E402
    check_targets,
    load_average,
    print_environment,
    print_queries,
    print_tables,
)
from benchproj.worker import (  # noqa: E402
    OUT_OF_BOX,
    POOL,
    REUSED,
    BenchmarkError,
    running_worker,
)

MODES = {
    "both": [OUT_OF_BOX, REUSED],
    "out-of-box": [OUT_OF_BOX],
    "reused": [REUSED],
    "pool": [POOL],
    "all": [OUT_OF_BOX, REUSED, POOL],
}


def run(n: int, rounds: int, modes: list[str], logs: Path) -> list[Sample]:
    check_redis()
    create_database()
    items = create_items(n)
    print_environment(n, rounds)
    print_queries(count_queries(items[0]))
    samples: list[Sample] = []
    # The backlog (worker alone, enqueue alone) in one mode: reused, or the only one run.
    backlog_mode = REUSED if REUSED in modes else modes[-1]
    for mode in modes:
        print(f"\nWorker's database connections: {mode}", flush=True)
        with running_worker(mode, logs) as worker:
            warm_up(worker, items, backlog=mode == backlog_mode)
            for round_ in range(rounds):
                for caller in (AUTOCOMMIT, ATOMIC):
                    for peer in rotated(round_, caller):
                        enqueue, tasks = measure(peer, caller, items, worker)
                        samples.append(Sample(peer.name, mode, caller, round_, enqueue, tasks))
                        print(
                            f"  round {round_ + 1}  {caller:<10} {peer.name:<22} "
                            f"enqueue {enqueue:5.0f}/s   end to end {tasks:4.0f} tasks/s",
                            flush=True,
                        )
                if mode != backlog_mode:
                    continue
                for peer in rotated(round_, BACKLOG):
                    autocommit, atomic, tasks, worker_cpu, db_cpu = measure_backlog(
                        peer, items, worker
                    )
                    samples += [
                        Sample(peer.name, PAUSED, AUTOCOMMIT, round_, enqueue=autocommit),
                        Sample(peer.name, PAUSED, ATOMIC, round_, enqueue=atomic),
                        Sample(
                            peer.name, mode, BACKLOG, round_, tasks=tasks,
                            worker_cpu=worker_cpu, db_cpu=db_cpu,
                        ),
                    ]  # fmt: skip
                    print(
                        f"  round {round_ + 1}  {BACKLOG:<10} {peer.name:<22} "
                        f"enqueue {autocommit:5.0f}/s autocommit, {atomic:5.0f}/s atomic, "
                        f"worker paused; then {tasks:4.0f} tasks/s draining "
                        f"(CPU per task: worker {worker_cpu:.2f} ms, PostgreSQL {db_cpu:.2f} ms)",
                        flush=True,
                    )
    print(f"\nLoad average at the end: {load_average()}")
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=None, help="tasks per measurement (2000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of all peers (3)")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 200 tasks, 1 round (unless given)"
    )
    parser.add_argument(
        "--mode", choices=list(MODES), default="both",
        help="the worker's database connections: both = out-of-box and reused (default); "
        "pool = Django's connection pool, no CELERY_DB_REUSE_MAX (needs psycopg[pool])",
    )  # fmt: skip
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    if n < 10 or rounds < 1:
        parser.error("need -n >= 10 and --rounds >= 1")
    modes = MODES[args.mode]
    if POOL in modes:
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            parser.error("--mode pool needs psycopg_pool: pip install 'psycopg[pool]'")
    logs = Path(tempfile.mkdtemp(prefix="boogie-bench-"))
    try:
        samples = run(n, rounds, modes, logs)
        print_tables(samples, modes, rounds, n)
    except BenchmarkError as exc:
        print(f"\nFAILED: {exc}\n(worker logs in {logs})", file=sys.stderr)
        return 1
    met = check_targets(samples) if REUSED in modes else True
    return 3 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
