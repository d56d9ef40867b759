"""Time-ordered UUIDs (version 7), so that id order is creation order."""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def uuid7() -> uuid.UUID:
    """Return a new version 7 UUID, strictly increasing within this process.

    The first 48 bits are the Unix time in milliseconds (RFC 9562); the 12 bits
    after the version hold the sub-millisecond fraction, and a collision within
    one process bumps the value by one, so ids made here never go backwards.
    """
    global _last
    nanos = time.time_ns()
    millis, sub = divmod(nanos, 1_000_000)
    fraction = sub * 4096 // 1_000_000
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (millis << 80) | (0x7 << 76) | (fraction << 64) | (0b10 << 62) | rand
    with _lock:
        if value <= _last:
            # Same 1/4096 ms slot or a clock step back: keep the order, stay a valid v7.
            value = _last + 1
        _last = value
    return uuid.UUID(int=value)
