"""Start and stop the demo's ``celery worker`` process (prefork, 2 processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent


class Worker:
    """A real ``celery -A demo_project worker`` process, its output in a log file."""

    def __init__(self, log: Path, concurrency: int = 2) -> None:
        self.log = log
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker with this process's settings and data folder."""
        command = [
            sys.executable, "-m", "celery", "-A", "demo_project", "worker",
            "-P", "prefork", "-c", str(self.concurrency), "-l", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"demo-{os.getpid()}@%h",
        ]  # fmt: skip
        path = os.pathsep.join(filter(None, [str(DEMO_DIR), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        with self.log.open("wb") as handle:
            # A session of its own: Ctrl-C reaches the demo, which then stops the worker.
            self.process = subprocess.Popen(
                command, cwd=DEMO_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def output(self) -> str:
        """The worker's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the worker says it is ready; raise RuntimeError if it does not."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.output():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the celery worker exited with code {self.process.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"the celery worker was not ready after {timeout} s")

    def stop(self, timeout: float = 15) -> int | None:
        """Send SIGTERM (a warm shutdown), wait, then kill; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The worker's pool processes share its session: kill them with it.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode
