"""Printing what was measured: queries per run, tables of medians and ratios, targets."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import celery
import django
import django_celery_results
from django.db import connection

import boogie_tasks
from benchproj import completion
from benchproj.measure import (
    ATOMIC,
    AUTOCOMMIT,
    BACKLOG,
    BARE,
    BOOGIE,
    DCR,
    PAUSED,
    Sample,
)
from benchproj.worker import REUSE_MAX, REUSED, ROOT, WORKER_PROCESSES, BenchmarkError

# (what, mode, caller, field, compared to, least ratio of boogie_tasks to it)
TARGETS = [
    ("end to end", REUSED, ATOMIC, "tasks", BARE, 0.65),
    ("end to end", REUSED, ATOMIC, "tasks", DCR, 1.05),
    ("enqueue, worker paused", PAUSED, ATOMIC, "enqueue", BARE, 0.8),
    ("enqueue, worker running", REUSED, ATOMIC, "enqueue", BARE, 0.8),
]


def print_queries(report: dict[str, tuple[list[str], list[str]]]) -> None:
    (first_enqueue, first_run), (next_enqueue, next_run) = report["first"], report["next"]
    print("\nSQL queries of one boogie_tasks run (the runner called in-process):")
    print(
        f"  caller, fn.delayed(obj): {len(next_enqueue)} "
        f"({len(first_enqueue)} on the first call of a process: ContentType lookup)"
    )
    print(
        f"  worker, boogie_tasks.run: {len(next_run)} "
        f"({len(first_run)} on a process's first run: ContentType lookup)"
    )
    for sql in next_enqueue + next_run:
        print("    " + _shorten(sql))


def _shorten(sql: str, limit: int = 150) -> str:
    return sql if len(sql) <= limit else sql[: limit - 4] + " ..."


def _values(samples: list[Sample], peer: str, mode: str, caller: str, what: str) -> list[float]:
    found = [
        getattr(s, what) for s in samples if (s.peer, s.mode, s.caller) == (peer, mode, caller)
    ]
    if not found:
        raise BenchmarkError(f"no sample of {peer}, {mode}, {caller}")
    return found


def median(samples: list[Sample], peer: str, mode: str, caller: str, what: str) -> float:
    return statistics.median(_values(samples, peer, mode, caller, what))


def spread(samples: list[Sample], peer: str, mode: str, caller: str, what: str) -> float:
    """Half the range over the rounds, in percent of the median."""
    values = _values(samples, peer, mode, caller, what)
    return 50.0 * (max(values) - min(values)) / statistics.median(values)


def _cells(samples: list[Sample], peer: str, mode: str, caller: str, what: str) -> str:
    """Median, spread, and the ratios to bare Celery's and django-celery-results' medians."""
    value = median(samples, peer, mode, caller, what)
    ratios = " ".join(
        f"{value / median(samples, other, mode, caller, what):>6.2f}" for other in (BARE, DCR)
    )
    return f"{value:>7.0f} {spread(samples, peer, mode, caller, what):>3.0f} {ratios}"


def _header(*columns: str) -> None:
    line = " ".join(columns)
    print(line)
    print("-" * len(line))


def print_tables(samples: list[Sample], modes: list[str], rounds: int, n: int) -> None:
    print(f"\nMedians of {rounds} round(s) of {n} tasks; ±% is half the range over the rounds;")
    print("x bare, x dcr: ratios of medians to bare Celery's, to django-celery-results'.")
    print("\nEnd to end: from the first enqueue to the last completion, the worker running.")
    ratio_columns = (f"{'±%':>3}", f"{'x bare':>6}", f"{'x dcr':>6}")
    _header(
        f"{'peer':<22}", f"{'worker db':<10}", f"{'caller':<10}",
        f"{'enqueue/s':>7}", *ratio_columns, " ", f"{'tasks/s':>7}", *ratio_columns,
    )  # fmt: skip
    for mode in modes:
        for caller in (AUTOCOMMIT, ATOMIC):
            for peer in (BARE, DCR, BOOGIE):
                print(
                    f"{peer:<22} {mode:<10} {caller:<10} "
                    f"{_cells(samples, peer, mode, caller, 'enqueue')}   "
                    f"{_cells(samples, peer, mode, caller, 'tasks')}"
                )
    drained = [s for s in samples if s.caller == BACKLOG]
    if not drained:
        return
    mode = drained[0].mode
    print(f"\nWorker alone: a backlog of {n} tasks drained (worker db {mode}).")
    print("CPU ms per task, medians: the worker's processes, PostgreSQL's.")
    _header(
        f"{'peer':<22}", f"{'tasks/s':>7}", *ratio_columns, f"{'worker':>6}", f"{'postgres':>8}"
    )
    for peer in (BARE, DCR, BOOGIE):
        cpu = [median(samples, peer, mode, BACKLOG, field) for field in ("worker_cpu", "db_cpu")]
        print(
            f"{peer:<22} {_cells(samples, peer, mode, BACKLOG, 'tasks')} "
            f"{cpu[0]:6.2f} {cpu[1]:8.2f}"
        )
    print(f"\nEnqueue alone: {n // 2} calls per caller while the worker was paused.")
    _header(f"{'peer':<22}", f"{'caller':<10}", f"{'enqueue/s':>9}", *ratio_columns)
    for caller in (AUTOCOMMIT, ATOMIC):
        for peer in (BARE, DCR, BOOGIE):
            print(f"{peer:<22} {caller:<10}   {_cells(samples, peer, PAUSED, caller, 'enqueue')}")


def check_targets(samples: list[Sample]) -> bool:
    """Print each target and whether it is met; True if all are."""
    print("\nTargets (worker db reused, caller in transaction.atomic()):")
    all_met = True
    for what, mode, caller, field, other, least in TARGETS:
        ratio = median(samples, BOOGIE, mode, caller, field) / median(
            samples, other, mode, caller, field
        )
        met = ratio >= least
        all_met &= met
        rounds = ", ".join(f"{r:.2f}x" for r in round_ratios(samples, other, mode, caller, field))
        print(
            f"  {what:<24} boogie_tasks / {other}: {ratio:.2f}x "
            f"(target >= {least}x): {'met' if met else 'NOT met'}; each round: {rounds}"
        )
    return all_met


def round_ratios(
    samples: list[Sample], other: str, mode: str, caller: str, what: str
) -> list[float]:
    """boogie_tasks' value over the other peer's, round by round (how far the noise goes)."""
    ours = {
        s.round: getattr(s, what)
        for s in samples
        if (s.peer, s.mode, s.caller) == (BOOGIE, mode, caller)
    }
    theirs = {
        s.round: getattr(s, what)
        for s in samples
        if (s.peer, s.mode, s.caller) == (other, mode, caller)
    }
    return [ours[r] / theirs[r] for r in sorted(ours) if r in theirs]


def print_environment(n: int, rounds: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0].split()[0]
    redis_version = completion.client().info("server")["redis_version"]
    print(
        f"boogie_tasks throughput, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load_average()}"
    )
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"Celery {celery.__version__}, django-celery-results {django_celery_results.__version__}, "
        f"PostgreSQL {pg_version}, Redis {redis_version}"
    )
    print(f"boogie_tasks from {Path(boogie_tasks.__file__).parent}, at {_revision()}")
    print(
        f"{n} tasks per measurement, {rounds} round(s); worker: prefork, "
        f"{WORKER_PROCESSES} processes; reused: CELERY_DB_REUSE_MAX={REUSE_MAX}"
    )


def _revision() -> str:
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "an unknown revision"
    return described.stdout.strip()


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
