"""The caller's side of the outage tests, in a process of its own on the test's cluster.

python -m tests.outage_driver enqueue COUNT MARKER SECONDS   # prints the record ids
"""

from __future__ import annotations

import json
import sys

import django


def main(argv: list[str]) -> None:
    django.setup()
    from django.db import transaction

    import tests.celery_app  # noqa: F401 - the project's Celery app, as a project's __init__ does
    from tests.testapp import tasks
    from tests.testapp.models import Book

    command, count, marker, seconds = argv[0], int(argv[1]), argv[2], float(argv[3])
    assert command == "enqueue", command
    with transaction.atomic():  # published together at the commit
        books = [Book.objects.create(title=f"book {i}") for i in range(count)]
        records = [tasks.chaos_slow.delayed(book, marker, seconds) for book in books]
    print(json.dumps([str(record.pk) for record in records]))


if __name__ == "__main__":
    main(sys.argv[1:])
