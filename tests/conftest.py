"""Fixtures shared by the integration and e2e suites: real brokers and real celery workers.

A missing broker skips the tests locally and fails them under CI (CI=true), as in dramatiq.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery
from hypothesis import HealthCheck, settings

from tests.services import RabbitVhost, RedisServer

ROOT = Path(__file__).resolve().parent.parent

# Property-based tests: a bounded budget in `make test` and CI, a long one in `make fuzz`.
settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("SENTINEL_HYPOTHESIS_PROFILE", "default"))


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.1,
    message: str = "condition",
) -> object:
    """Poll until predicate() is truthy; never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@dataclass
class Broker:
    kind: str
    url: str
    queue: str
    queues_to_clean: list[str] = field(default_factory=list)

    def purge(self) -> None:
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            if self.kind == "redis":
                client = conn.default_channel.client
                client.flushdb()
            else:
                channel = conn.default_channel
                for name in {self.queue, *self.queues_to_clean}:
                    try:
                        channel.queue_delete(name)
                    except Exception:
                        channel = conn.channel()


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


class Worker:
    """A real `celery worker` subprocess with a 1 s heartbeat (expires 2 s after it stops)."""

    def __init__(
        self,
        broker: Broker,
        name: str,
        queue: str,
        log_dir: Path,
        heartbeat: int = 1,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self.hostname = f"{name}@{socket.gethostname()}"
        env = {
            **os.environ,
            "SENTINEL_TEST_BROKER": broker.url,
            "SENTINEL_TEST_QUEUE": queue,
            "PYTHONPATH": str(ROOT),
        }
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integration.app",
                "worker",
                "-P",
                "solo" if concurrency == 1 else "prefork",
                "-c",
                str(concurrency),
                "-E",
                "-n",
                self.hostname,
                "-Q",
                queue,
                "--heartbeat-interval",
                str(heartbeat),
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_path.read_text()}")
            return b"ready." in self.log_path.read_bytes()

        wait_for(ready, timeout, message=f"worker {self.hostname} ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


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
