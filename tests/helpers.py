"""Small helpers shared by the tests."""

from __future__ import annotations

from boogie_tasks import transitions


def claim(pk, *, waiting=True):
    """Claim as ``record.run()`` does (any waiting state), or as a worker (READY and due)."""
    return transitions.claim(pk, worker="tests:1", waiting=waiting)


def verbs(queries) -> list[str]:
    """The first word of each statement run: ``["UPDATE", "SELECT", ...]``."""
    return [query["sql"].split()[0].upper() for query in queries.captured_queries]


def sent(queries) -> list[str]:
    """The SQL of each statement run, in order."""
    return [query["sql"] for query in queries.captured_queries]
