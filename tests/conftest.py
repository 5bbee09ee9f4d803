"""Fixtures shared by the integration and e2e suites: real brokers and real celery workers.

A missing broker skips the tests locally and fails them under CI (CI=true), as in dramatiq.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from hypothesis import HealthCheck, settings

from sentinel.db.engine import Engine
from sentinel.db.sqlite import Database
from tests.helpers import Broker, Worker
from tests.services import PostgresDatabase, RabbitVhost, RedisServer

# Property-based tests: a bounded budget in `make test` and CI, a long one in `make fuzz`.
settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("SENTINEL_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the whole run (never the machine's shared one)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.kill()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for the whole run, deleted with everything in it at the end."""
    vhost = RabbitVhost()
    vhost.create()
    yield vhost.url
    vhost.delete()


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[PostgresDatabase]:
    """A fresh PostgreSQL database for the whole run, dropped at the end; skips (fails under
    CI) when PostgreSQL is not reachable."""
    db = PostgresDatabase()
    db.create()
    yield db
    db.drop()


@pytest.fixture
def postgres_url(postgres_db: PostgresDatabase) -> str:
    """A schema of this test's own in the run's database, as a storage.url."""
    return postgres_db.schema_url(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each storage engine in turn, empty and migrated: the repositories' contract suite."""
    db: Engine
    if request.param == "sqlite":
        db = Database(tmp_path / "sentinel.db")
    else:
        from sentinel.db.postgres import PostgresDatabase as Postgres

        db = Postgres(request.getfixturevalue("postgres_url"))
    yield db
    db.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    queue = f"sentinel-test-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        b = Broker("redis", request.getfixturevalue("redis_url"), queue)
    else:
        b = Broker("rabbitmq", request.getfixturevalue("amqp_url"), queue)
    b.purge()
    yield b
    b.purge()


@pytest.fixture
def workers(broker: Broker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str = "w1", queue: str | None = None, **kw: object) -> Worker:
        w = Worker(broker, f"{name}-{uuid.uuid4().hex[:4]}", queue or broker.queue, tmp_path, **kw)  # type: ignore[arg-type]
        if queue:
            broker.queues_to_clean.append(queue)
        started.append(w)
        w.wait_ready()
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def producer(broker: Broker) -> Iterator[Celery]:
    """A fresh Celery client app that sends the test tasks (by name) to the test queue."""
    app = Celery("sentinel_test_producer", broker=broker.url, set_as_current=False)
    app.conf.update(
        task_default_queue=broker.queue,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
    )
    yield app
    app.close()
