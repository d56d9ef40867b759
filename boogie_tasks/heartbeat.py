"""A running record's heartbeat, for tasks that report no progress for a while."""

from __future__ import annotations

import logging
import os
import threading

from django.db import connections, router

from boogie_tasks.conf import settings
from boogie_tasks.models import TaskRecord
from boogie_tasks.progress import ProgressWriter

logger = logging.getLogger("boogie_tasks")


class Heartbeat:
    """One daemon thread per process keeps the heartbeat of the runs it watches.

    A progress write counts as a beat, so a task that reports progress costs
    no extra write; the thread only writes for runs quiet for a whole interval.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: set[ProgressWriter] = set()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()
        self._interval = 0.0

    def watch(self, writer: ProgressWriter) -> None:
        """Keep this run's heartbeat fresh until ``unwatch``."""
        with self._lock:
            self._watched.add(writer)
            # After a fork (prefork pool) the parent's thread is not in the child.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._loop, name="boogie-tasks-heartbeat", daemon=True
                )
                self._thread.start()
        if float(settings.HEARTBEAT_INTERVAL) != self._interval:
            self._wake.set()  # the setting changed (tests): the thread reads it again

    def unwatch(self, writer: ProgressWriter) -> None:
        """Stop beating for this run."""
        with self._lock:
            self._watched.discard(writer)

    def _loop(self) -> None:
        try:
            while True:
                interval = self._interval = float(settings.HEARTBEAT_INTERVAL)
                self._wake.wait(max(interval / 4, 0.05))
                self._wake.clear()
                with self._lock:
                    quiet = [w for w in self._watched if w.quiet_for() >= interval]
                for writer in quiet:
                    try:
                        writer.beat()
                    except Exception:
                        # The database may be down for a moment: the next beat tries again.
                        logger.exception("heartbeat failed record=%s", writer.record_id)
                if quiet:
                    # Beats are rare (quiet runs only): hold no connection between them.
                    _close()
        finally:
            _close()


def _close() -> None:
    """Close this thread's connection to the records' database."""
    connections[router.db_for_write(TaskRecord)].close()


heartbeat = Heartbeat()
