"""Completion counter in Redis: the same negligible cost for every peer, no result backend."""

from __future__ import annotations

import os
import time

import redis
from django.conf import settings

DONE_KEY = "boogie_bench:done"
FAILED_KEY = "boogie_bench:failed"
LAST_KEY = "boogie_bench:last"
# The Celery tasks whose completion is counted (boogie_tasks runs as boogie_tasks.run).
COUNTED = frozenset({"boogie_tasks.run", "benchproj.tasks.bare_fetch", "benchproj.tasks.dcr_fetch"})

_client: redis.Redis | None = None
_client_pid = 0


def client() -> redis.Redis:
    """A Redis client of this process (a forked pool process makes its own)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(settings.REDIS_URL)
        _client_pid = os.getpid()
    return _client


def mark_done(task_name: str, state: str | None) -> None:
    """Count one finished task and note the time it finished."""
    if task_name not in COUNTED:
        return
    pipe = client().pipeline(transaction=False)
    pipe.incr(DONE_KEY)
    if state != "SUCCESS":
        pipe.incr(FAILED_KEY)
    pipe.set(LAST_KEY, repr(time.time()))
    pipe.execute()


def reset() -> None:
    """Forget the counts of the previous measurement."""
    client().delete(DONE_KEY, FAILED_KEY, LAST_KEY)


def read() -> tuple[int, int, float | None]:
    """Return (done, failed, time of the last completion)."""
    done, failed, last = client().mget(DONE_KEY, FAILED_KEY, LAST_KEY)
    return int(done or 0), int(failed or 0), float(last) if last else None
