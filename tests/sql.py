"""What a block of code sent to the database, with prepared statements read back."""

from __future__ import annotations

from boogie_tasks.testing import executed_sql as sent


def verbs(queries) -> list[str]:
    """The first word of each statement run: ``["UPDATE", "SELECT", ...]``."""
    return [sql.split()[0].upper() for sql in sent(queries)]


__all__ = ["sent", "verbs"]
