"""Run the boogie_tasks demo: a real Celery worker, live progress, then the records.

Usage, from any folder: ``.venv/bin/python examples/demo/run_demo.py``. The SQLite
file, the broker's folders and the worker's log go to ``var/demo/`` of the
repository, or to ``$BOOGIE_DEMO_VAR``. Exits 0 when everything went as expected.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

# This folder is on sys.path (the script's own); the worker gets it through PYTHONPATH.
os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"

TIMEOUT = 60  # seconds for all records to finish
POLL = 0.25  # seconds between two looks at the records

# name, price in cents, discontinued, stars of its reviews
CATALOG = [
    ("Teapot", 2400, False, [5, 4, 5, 3, 5, 4, 4, 5, 2, 5]),
    ("Kettle", 3900, False, [3, 4, 2, 4, 5, 3, 4]),
    ("Toaster", 1999, True, [1, 2, 3, 2, 1]),
]


def prepare() -> Path:
    """Set Django up on a fresh database and broker folder; return the data folder."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    var = Path(settings.VAR_DIR)
    var.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(settings.BROKER_DIR, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.DATABASES['default']['NAME']}{suffix}").unlink(missing_ok=True)
    for folder in settings.CELERY_BROKER_TRANSPORT_OPTIONS.values():
        if isinstance(folder, str):
            Path(folder).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    return var


def create_products() -> list:
    """The shop's products, with their reviews."""
    from shop.models import Product, Review

    products = []
    for name, price, discontinued, stars in CATALOG:
        product = Product.objects.create(name=name, price_cents=price, discontinued=discontinued)
        Review.objects.bulk_create(Review(product=product, stars=n) for n in stars)
        products.append(product)
    return products


def enqueue(products: list) -> list:
    """Send two tasks for each product to the worker; return their records."""
    from shop.tasks import reprice, summarize_reviews

    records = []
    for product in products:
        records.append(summarize_reviews.delayed(product))
        records.append(reprice.delayed(product, percent=5))
    for record in records:
        print(f"  queued {record.task_name} for {record.obj}: record {record.id}")
    return records


def watch(records: list, names: dict[str, str]) -> tuple[list, bool]:
    """Show the records' progress until all are final; return them and whether they are."""
    from boogie_tasks.models import TaskRecord

    from demo_project.display import LiveView

    view = LiveView(names)
    ids = [record.id for record in records]
    start = time.monotonic()
    while True:
        current = list(TaskRecord.objects.filter(id__in=ids).order_by("id"))
        elapsed = time.monotonic() - start
        view.update(current, elapsed)
        if all(record.is_finished for record in current):
            return current, True
        if elapsed > TIMEOUT:
            return current, False
        time.sleep(POLL)


def report(records: list, names: dict[str, str]) -> None:
    """Print the records and their results as a table."""
    from demo_project.display import duration, outcome, short_name, table

    rows = [
        [short_name(r.task_name), names.get(r.object_id, r.object_id), r.status, r.attempts,
         duration(r), outcome(r)]
        for r in records
    ]  # fmt: skip
    print(table(["task", "object", "status", "attempts", "duration", "result or error"], rows))


def check(records: list, products: list) -> list[str]:
    """Compare what happened with what the demo expects; return the differences."""
    from boogie_tasks import TaskStatus

    from shop.tasks import price_tag, summarize_reviews

    problems = []
    for record in records:
        failing = record.task_name.endswith(".reprice") and record.obj.discontinued
        expected = TaskStatus.FAILED if failing else TaskStatus.SUCCESSFUL
        if record.status != expected:
            problems.append(
                f"{record.task_name} for {record.obj} is {record.status}: {record.error}"
            )
        elif failing and ("discontinued" not in record.error or record.traceback):
            problems.append(f"unexpected failure of {record.task_name}: {record.error!r}")

    teapot = products[0]
    teapot.refresh_from_db()  # the worker changed its price
    results = list(summarize_reviews.results(teapot))
    print(f"\nsummarize_reviews.results({teapot}): {results}")
    if results != [{"reviews": 10, "average": 4.2}]:
        problems.append(f"unexpected results for {teapot}: {results}")

    tag = price_tag.call(teapot, currency="EUR")
    ran = price_tag.tasks(teapot).first()
    print(f"price_tag.call({teapot}, currency='EUR'): {tag!r} (record {ran.status}, {ran.worker})")
    if tag != "Teapot: 25.20 EUR" or ran.status != TaskStatus.SUCCESSFUL:
        problems.append(f"unexpected price_tag.call() result {tag!r}, record {ran.status}")
    return problems


def main() -> int:
    """Run the demo; return the exit code."""
    from demo_project.worker import Worker

    started = time.monotonic()
    var = prepare()
    print(f"Database and broker in {var}")
    products = create_products()
    names = {str(product.pk): product.name for product in products}
    worker = Worker(var / "worker.log")
    problems: list[str] = []
    try:
        print("Starting a celery worker (prefork, 2 processes) ...")
        worker.start()
        worker.wait_ready()
        print(f"Worker ready (pid {worker.process.pid}, log in {worker.log}).\n")
        records = enqueue(products)
        print()
        records, finished = watch(records, names)
        print()
        report(records, names)
        if not finished:
            problems.append(f"not all records finished within {TIMEOUT} s")
        problems += check(records, products)
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        code = worker.stop()
        print(f"\nWorker stopped (exit code {code}).")
    if problems:
        print("\nWorker log (end):\n" + worker.output()[-3000:], file=sys.stderr)
        print("\nThe demo did not go as expected:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"All went as expected, in {time.monotonic() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
