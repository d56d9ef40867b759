"""Fixtures: real worker processes on each broker, and objects with each kind of pk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Beat, Worker, reset_broker, server_url, use_broker

BROKERS = ["filesystem", "redis", "amqp"]


@pytest.fixture(scope="session", params=BROKERS)
def broker(request, tmp_path_factory) -> Iterator[tuple[str, dict]]:
    """A broker URL and environment for the worker: the embedded one and the real servers."""
    if request.param == "filesystem":
        folder = tmp_path_factory.mktemp("broker")
        (folder / "control").mkdir()
        options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        }
        env = {"BOOGIE_TEST_BROKER_URL": "filesystem://", "BOOGIE_TEST_BROKER_FOLDER": str(folder)}
        yield "filesystem://", options, env
    else:
        variable = {"redis": "BOOGIE_TEST_REDIS_URL", "amqp": "BOOGIE_TEST_AMQP_URL"}
        url = server_url(variable[request.param])
        yield url, {}, {"BOOGIE_TEST_BROKER_URL": url}
    use_broker("memory://", session=True)


@pytest.fixture(scope="session")
def worker(broker, django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A running ``celery worker`` (prefork, 2 processes) on the broker under test."""
    url, options, env = broker
    _purge(url, options)
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    process = Worker(env, log, queues="celery,other,routed", concurrency=2)
    process.wait_ready()
    use_broker(url, options, session=True)
    yield process
    process.stop()
    use_broker("memory://", session=True)


@pytest.fixture(scope="session")
def beat(broker, worker, tmp_path_factory) -> Iterator[Beat]:
    """A running ``celery beat`` that sends the dispatcher's ticks to the worker."""
    _, _, env = broker
    process = Beat(env, Path(tmp_path_factory.mktemp("beat")) / "beat.log")
    process.wait_ready()
    yield process
    process.stop()


def _purge(url: str, options: dict) -> None:
    """Drop messages left by an earlier run on a shared server."""
    from kombu import Connection

    with Connection(url, transport_options=options) as connection:
        for queue in ("celery", "other", "routed"):
            try:
                connection.default_channel.queue_purge(queue)
            except Exception:
                pass  # a queue that does not exist yet holds nothing


@pytest.fixture(autouse=True)
def private_broker(request) -> Iterator[None]:
    """Tests without a real worker publish to memory://, never to the session's worker.

    Otherwise a test that commits a ``.delayed()`` would race the worker for it.
    """
    if request.node.get_closest_marker("worker"):
        yield
        return
    use_broker("memory://")
    yield
    reset_broker()


@pytest.fixture
def book(db):
    from tests.testapp.models import Book

    return Book.objects.create(title="Dune", pages=5)


@pytest.fixture(params=["int", "uuid", "str"])
def any_object(request, db):
    """One saved object for each kind of primary key."""
    from tests.testapp.models import Book, Document, Tag

    return {
        "int": lambda: Book.objects.create(title="Dune"),
        "uuid": lambda: Document.objects.create(id=uuid.uuid4(), name="spec"),
        "str": lambda: Tag.objects.create(slug="a-tag/with spaces"),
    }[request.param]()
