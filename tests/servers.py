"""Finding the real servers the integration tests need, and starting workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_url(variable: str) -> str:
    """Return the server URL in ``variable``, or skip (fail under CI) without one."""
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"set {variable} to run this test against a real server")
    parts = urlparse(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError as exc:
        message = f"{variable}={url} is not reachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


_session_broker: tuple[str, dict] = ("memory://", {})


def use_broker(url: str, transport_options: dict | None = None, *, session: bool = False) -> None:
    """Point this process's Celery app at another broker.

    ``session=True`` marks it as the broker of the session's worker, which
    ``reset_broker()`` goes back to after a test that borrowed another one.
    """
    global _session_broker
    from kombu import pools

    from tests.celery_app import app

    if session:
        _session_broker = (url, transport_options or {})
    app.conf.broker_url = url
    filesystem = url.startswith("filesystem://")
    app.conf.broker_transport = "boogie_tasks.transport:FilesystemTransport" if filesystem else None
    app.conf.broker_transport_options = transport_options or {}
    pools.reset()  # kombu keeps pools per URL, process-wide: drop them all
    app._after_fork()


def reset_broker() -> None:
    """Go back to the session worker's broker (or memory:// when none runs)."""
    use_broker(*_session_broker)


class Worker:
    """A real ``celery worker`` process of the test project."""

    ready_text = " ready."

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        queues: str,
        concurrency: int,
        settings: str = "tests.settings",
    ) -> None:
        command = [
            "worker", "-P", "prefork", "-c", str(concurrency), "-Q", queues, "-l", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"tests-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]  # fmt: skip
        self.start(command, env, log, settings)

    def start(
        self, arguments: list[str], env: dict[str, str], log: Path, settings: str = "tests.settings"
    ) -> None:
        self.log = log
        command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", *arguments]
        full_env = {**os.environ, **env, "BOOGIE_TEST_WORKER": "1", "PYTHONPATH": str(ROOT)}
        full_env["DJANGO_SETTINGS_MODULE"] = settings
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"celery did not start:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.handle.close()


class Beat(Worker):
    """A real ``celery beat`` process with django-celery-beat's database scheduler."""

    ready_text = "beat: Starting"

    def __init__(self, env: dict[str, str], log: Path, settings: str = "tests.settings") -> None:
        command = [
            "beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "-l", "INFO",
            "--pidfile=", "--max-interval", "1",
        ]  # fmt: skip
        self.start(command, env, log, settings)


def terminate_backend(connection) -> None:
    """End the server process behind a Django PostgreSQL connection, as a restart would.

    Asked on a connection of its own; the shared server goes on. The next query
    on ``connection`` fails as on a database that went away.
    """
    import psycopg

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("context", None)
    params.pop("cursor_factory", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):  # until the server says it is gone
            if not killer.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone():
                return
            time.sleep(0.02)
