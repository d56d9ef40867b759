"""Progress reporting from inside a task: throttled writes to the running record."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import transaction

from boogie_tasks import resilience
from boogie_tasks.conf import settings
from boogie_tasks.exceptions import TaskCanceled
from boogie_tasks.jsonutil import cut
from boogie_tasks.signals import send, task_progress

T = TypeVar("T")

logger = logging.getLogger("boogie_tasks")

# About how often, in seconds, a busy loop reads the clock; and the most calls between reads.
CHECK_PERIOD = 0.02
MAX_CHECK_EVERY = 100_000

__all__ = ["progress"]


class ProgressWriter:
    """The progress of one running attempt, written at most once an interval."""

    __slots__ = (
        "record_id", "attempts", "task_name", "current", "total", "message", "interval",
        "check_every", "countdown", "last_check", "next_write", "last_write", "__weakref__",
    )  # fmt: skip

    def __init__(self, record_id: Any, attempts: int, task_name: str) -> None:
        self.record_id = record_id
        self.attempts = attempts
        self.task_name = task_name
        self.current = 0
        self.total: int | None = None
        self.message = ""
        self.interval = float(settings.PROGRESS_INTERVAL)
        # Reading the clock can cost a system call on some machines: the hot path only
        # counts down, and the clock is read every ``check_every`` calls, a number
        # adapted so that it is read about every CHECK_PERIOD seconds.
        self.check_every = 1
        self.countdown = 1
        # The claim wrote the first heartbeat; each write is one too.
        self.last_check = self.last_write = time.monotonic()
        # The first report is written at once, so a bar shows its total from the start.
        self.next_write = 0.0

    def update(self, current: int | None, total: int | None, message: str | None) -> None:
        """Record new values and write them if the interval has passed."""
        if current is not None:
            self.current = int(current)
        if total is not None:
            self.total = int(total)
        if message is not None:
            self.message = cut(str(message), 255)  # the column's length
        if time.monotonic() >= self.next_write:
            self.flush()

    def start(self, total: int | None, message: str | None) -> None:
        """Begin a new loop: the count starts again from 0 with this total."""
        self.current, self.total = 0, None if total is None else int(total)
        self.update(None, None, message)

    def tick(self) -> None:
        """Read the clock: write if the interval passed, and adapt the next check."""
        now = time.monotonic()
        elapsed = now - self.last_check
        if elapsed > 0 and self.interval > 0:
            rate = self.check_every / elapsed
            self.check_every = max(1, min(MAX_CHECK_EVERY, int(rate * CHECK_PERIOD)))
        self.countdown = self.check_every
        self.last_check = now
        if now >= self.next_write:
            self.flush()

    def fields(self) -> dict[str, Any]:
        """The progress columns as they stand, for the finishing write."""
        return {
            "progress_current": self.current,
            "progress_total": self.total,
            "progress_message": self.message,
        }

    def quiet_for(self) -> float:
        """Seconds since this run last wrote to its record."""
        return time.monotonic() - self.last_write

    def beat(self) -> None:
        """Write only the heartbeat (from the heartbeat thread), fenced like progress."""
        from boogie_tasks import transitions  # models are not loaded when this module is

        self.last_write = time.monotonic()
        transitions.beat(self.record_id, self.attempts)

    def flush(self) -> None:
        """Write the progress columns now; raise TaskCanceled if the run is no longer ours."""
        from boogie_tasks import transitions

        self.last_write = time.monotonic()
        self.next_write = self.last_write + self.interval
        try:
            written = transitions.write_progress(self.record_id, self.attempts, self.fields())
        except resilience.CONNECTION_ERRORS:
            connection = transaction.get_connection(transitions.database())
            if connection.in_atomic_block:
                raise  # the caller's transaction is lost with it
            # The database is away for a moment: the task goes on, the next write
            # (or the finish, which carries the last values) tells the rest.
            connection.close()
            logger.warning("progress not written record=%s: database unreachable", self.record_id)
            return
        if not written:
            raise TaskCanceled(
                f"{self.task_name} record {self.record_id} was cancelled or taken over"
            )
        send(
            task_progress, record_id=self.record_id,
            current=self.current, total=self.total, message=self.message,
        )  # fmt: skip


_writer: ContextVar[ProgressWriter | None] = ContextVar("boogie_tasks_progress", default=None)


def _count(iterable: Iterable[Any]) -> int | None:
    if hasattr(iterable, "__len__"):
        return len(iterable)  # type: ignore[arg-type]
    return None


class Progress:
    """``progress(iterable)``, ``progress.set(...)``, ``progress.advance(n)``.

    Inside a task these write to the running record; outside one they do nothing.
    """

    def __call__(
        self, iterable: Iterable[T], total: int | None = None, message: str | None = None
    ) -> Iterator[T]:
        """Yield from ``iterable``, counting one unit of progress per item.

        Each loop starts the count again from 0; its total is ``total``, or
        ``len(iterable)`` when it has one (a QuerySet is evaluated once, here).
        """
        writer = _writer.get()
        if writer is None:
            yield from iterable
            return
        if total is None:
            total = _count(iterable)
        writer.start(total, message)
        # The loop counts in a local and settles with the writer only when the
        # clock is due (see ProgressWriter.tick): an item costs a decrement.
        left = writer.countdown
        try:
            for item in iterable:
                yield item
                left -= 1
                if left <= 0:
                    writer.current += writer.countdown
                    writer.tick()
                    left = writer.countdown
        finally:
            writer.current += writer.countdown - left
            writer.countdown = left

    def set(self, current: int, total: int | None = None, message: str | None = None) -> None:
        """Set the work done so far, and optionally the total and a message."""
        writer = _writer.get()
        if writer is not None:
            writer.update(current, total, message)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of work done."""
        _advance(n)


def _advance(n: int = 1) -> None:
    # The hot path of a loop: attribute arithmetic, the clock only when the countdown ends.
    writer = _writer.get()
    if writer is not None:
        writer.current += n
        left = writer.countdown - 1
        writer.countdown = left
        if left <= 0:
            writer.tick()


progress = Progress()
# A plain function as an instance attribute: no bound method is made on each call.
progress.advance = _advance  # type: ignore[method-assign]
