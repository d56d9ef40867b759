"""Strict JSON checks for arguments and results, naming the offending value and its size."""

from __future__ import annotations

import json
import reprlib
from typing import Any

from boogie_tasks.exceptions import InvalidResult, InvalidTaskArguments

__all__ = ["cut", "short", "to_json"]

# A value shown in a message: a few levels, a few items, a few characters.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 60, 60, 6, 6


def to_json(value: Any, *, task: str, what: str, limit: int | None = None) -> Any:
    """Return ``value`` as it comes back from strict JSON (no NaN, no infinity).

    ``limit``: the most characters its JSON may take.

    Raises:
        InvalidTaskArguments: for an argument (``what`` names it).
        InvalidResult: for a result.
    """
    error = InvalidResult if what == "result" else InvalidTaskArguments
    try:
        text = json.dumps(value, allow_nan=False)
    except RecursionError:
        raise error(f"{task}: {what} is nested too deeply to be stored as JSON") from None
    except (TypeError, ValueError) as exc:
        raise error(
            f"{task}: {what} {short(value)} is not JSON: {exc}{_hint(value, exc)}"
        ) from None
    if limit is not None and len(text) > limit:
        raise error(
            f"{task}: {what} takes {len(text):,} characters as JSON, over the limit of "
            f"{limit:,} (BOOGIE_TASKS_MAX_{'RESULT' if what == 'result' else 'ARGUMENT'}_SIZE)"
        )
    return json.loads(text)


# What to send instead of a value JSON does not take, by the type the error names.
_HINTS = {
    "datetime": "pass value.isoformat() and parse it back in the task",
    "date": "pass value.isoformat() and parse it back in the task",
    "time": "pass value.isoformat() and parse it back in the task",
    "timedelta": "pass value.total_seconds()",
    "Decimal": "pass str(value)",
    "UUID": "pass str(value)",
    "set": "pass a list",
    "frozenset": "pass a list",
    "bytes": "pass a str (decoded, or base64)",
}


def _hint(value: Any, exc: Exception) -> str:
    """What to send instead, for the type the error names (``Object of type X is ...``)."""
    words = str(exc).split()
    kind = words[3] if words[:3] == ["Object", "of", "type"] and len(words) > 3 else ""
    if kind in _HINTS:
        return f" ({_HINTS[kind]})"
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return " (only the first argument may be a model instance: pass this one's pk)"
    return ""


def short(value: Any) -> str:
    """``repr(value)``, bounded in depth and length whatever the value."""
    try:
        return _REPR.repr(value)
    except Exception:  # a __repr__ that fails, or recurses without end
        return f"<{type(value).__name__}>"


def cut(text: str, limit: int) -> str:
    """``text``, or its start and a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"... [{len(text) - limit:,} more characters cut]"
    return text[: max(limit - len(marker), 0)] + marker
