"""The benchmark's own ``celery worker`` process: started, paused, resumed, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from benchproj.celery_app import app

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
ROOT = HERE.parent  # the checkout, whose boogie_tasks the worker imports

OUT_OF_BOX, REUSED, POOL = "out of box", "reused", "pool"
# The worker of the "reused" mode closes its connections every REUSE_MAX tasks per process.
REUSE_MAX = 1000
WORKER_PROCESSES = 2


class BenchmarkError(Exception):
    """A measurement that could not be made or did not complete."""


class Worker:
    """A ``celery worker`` process of the benchmark project, started and stopped by us."""

    def __init__(self, mode: str, logs: Path) -> None:
        self.mode = mode
        slug = mode.replace(" ", "-")
        self.name = f"bench-{os.getpid()}-{slug}@{socket.gethostname()}"
        self.log = logs / f"worker-{slug}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchproj.settings",
            "PYTHONPATH": os.pathsep.join(
                [str(HERE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        env.pop("BOOGIE_BENCH_DB_REUSE_MAX", None)
        env.pop("BOOGIE_BENCH_DB_POOL", None)
        if mode == REUSED:
            env["BOOGIE_BENCH_DB_REUSE_MAX"] = str(REUSE_MAX)
        elif mode == POOL:
            env["BOOGIE_BENCH_DB_POOL"] = "1"
        command = [
            sys.executable, "-m", "celery", "-A", "benchproj.celery_app", "worker",
            "-P", "prefork", "-c", str(WORKER_PROCESSES), "-Q", settings.QUEUE,
            "-l", "WARNING", "-n", self.name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.handle = self.log.open("w")
        self.process = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def pause(self) -> None:
        """Stop consuming the queue (Celery's remote control), so that a backlog builds up."""
        self._control("cancel_consumer")

    def resume(self) -> None:
        self._control("add_consumer")

    def _control(self, command: str) -> None:
        replies = getattr(app.control, command)(
            settings.QUEUE, destination=[self.name], reply=True, timeout=10
        )
        if not any(self.name in reply for reply in replies or []):
            raise BenchmarkError(f"the worker did not answer {command}:\n{self.tail()}")

    def stop(self) -> None:
        """Warm shutdown of our worker (by its pid); killed if it does not stop."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.handle.close()


@contextmanager
def running_worker(mode: str, logs: Path) -> Iterator[Worker]:
    worker = Worker(mode, logs)
    try:
        yield worker
    finally:
        worker.stop()
