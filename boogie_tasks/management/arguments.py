"""Validators of ``manage.py boogie_tasks``' arguments: a bad value is refused by argparse."""

from __future__ import annotations

import datetime
import re
import uuid
from argparse import ArgumentTypeError

from boogie_tasks.status import TaskStatus

__all__ = ["age", "object_ref", "positive", "record_id", "status"]

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)


def age(value: str) -> datetime.timedelta:
    """Parse an age such as 30s, 15m, 12h, 30d or 2w."""
    match = _AGE.match(value)
    if not match:
        raise ArgumentTypeError(
            f"invalid age {value!r}: use a whole number and a unit, s, m, h, d or w (e.g. 30d)"
        )
    return datetime.timedelta(**{_UNITS[match[2].lower()]: int(match[1])})


def status(value: str) -> TaskStatus:
    """Parse a status name, in any case."""
    try:
        return TaskStatus(value.upper())
    except ValueError:
        raise ArgumentTypeError(
            f"invalid status {value!r}: choose from {', '.join(TaskStatus.values)}"
        ) from None


def object_ref(value: str) -> tuple[str, str, str]:
    """Parse ``app_label.model:pk`` into its three parts."""
    label, sep, pk = value.partition(":")
    app_label, dot, model = label.partition(".")
    if not (sep and dot and app_label and model and pk):
        raise ArgumentTypeError(
            f"invalid object {value!r}: use app_label.model:pk (e.g. myapp.report:42)"
        )
    return app_label, model.lower(), pk


def record_id(value: str) -> uuid.UUID:
    """Parse a record id (a UUID)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ArgumentTypeError(f"invalid record id {value!r}: a record id is a UUID") from None


def positive(value: str) -> int:
    """Parse a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ArgumentTypeError(f"invalid number {value!r}: a whole number of at least 1")
    return number
