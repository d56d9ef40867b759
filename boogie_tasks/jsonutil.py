"""Strict JSON checks for arguments and results, naming the offending value."""

from __future__ import annotations

import json
from typing import Any

from boogie_tasks.exceptions import InvalidResult, InvalidTaskArguments


def to_json(value: Any, *, task: str, what: str) -> Any:
    """Return ``value`` as it comes back from strict JSON (no NaN, no infinity).

    Raises:
        InvalidTaskArguments: for an argument (``what`` names it).
        InvalidResult: for a result.
    """
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        error = InvalidResult if what == "result" else InvalidTaskArguments
        raise error(f"{task}: {what} {_short(value)} is not JSON: {exc}") from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
