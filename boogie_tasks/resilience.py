"""A database's bad moment on a run's path: drop dead connections, retry what is safe to.

Django drops a connection that an error left unusable between two requests
(``close_if_unusable_or_obsolete``); a Celery worker that reuses its
connections (``CELERY_DB_REUSE_MAX``) has no requests, so a run does it here
before its claim. The run's writes are fenced conditional updates: sent
again on a fresh connection, they change nothing that is not theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connections

__all__ = ["CONNECTION_ERRORS", "drop_if_broken", "retrying"]

logger = logging.getLogger("boogie_tasks")

T = TypeVar("T")

# What a lost or refused connection raises (a query error is not among them).
CONNECTION_ERRORS = (OperationalError, InterfaceError)
# The longest pause between two tries.
MAX_PAUSE = 1.0


def drop_if_broken(using: str) -> None:
    """Close the connection if an error since its last use left it unusable."""
    connection = connections[using]
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()  # the next query connects again


def retrying(write: Callable[[], T], using: str, seconds: float, what: str) -> T:
    """``write()``, tried again on a fresh connection while the database is away.

    For at most ``seconds``, then the connection error is raised. Never inside
    a transaction: a broken one cannot be written in again.
    """
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            return write()
        except CONNECTION_ERRORS as exc:
            connection = connections[using]
            if connection.in_atomic_block or time.monotonic() + pause > deadline:
                raise
            connection.close()
            if pause == 0.05:
                logger.warning(
                    "database unreachable: %s tried again for up to %.0f s (%s)",
                    what, seconds, str(exc).strip()[:200],
                )  # fmt: skip
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
