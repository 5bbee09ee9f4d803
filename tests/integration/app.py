"""The Celery app the integration tests run real workers of (`celery -A tests.integration.app`)."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("sentinel_test", broker=os.environ.get("SENTINEL_TEST_BROKER", "memory://"))
app.conf.update(
    task_default_queue=os.environ.get("SENTINEL_TEST_QUEUE", "celery"),
    worker_send_task_events=os.environ.get("SENTINEL_TEST_EVENTS", "1") == "1",
    task_send_sent_event=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_backend=None,
    worker_hijack_root_logger=False,
    # Redis redelivers an unacknowledged (acks_late) task after this long (kombu's default is
    # an hour), RabbitMQ as soon as the connection that held it closes.
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("SENTINEL_TEST_VISIBILITY", "3600"))
    },
)


# What `celery beat` runs in the periodic_task tests, and where sentinel's `celery.app` reads
# the period from. Only those tests start a beat.
app.conf.beat_schedule = {"tick": {"task": "tests.tick", "schedule": 2.0}}


@app.task(name="tests.tick")
def tick() -> None:
    pass


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tests.flaky")
def flaky(i: int) -> int:
    """Fails every other call: a 50% failure rate."""
    if i % 2:
        raise ValueError(f"flaky failure {i}")
    return i


@app.task(name="tests.sleep_late", acks_late=True, reject_on_worker_lost=True)
def sleep_late(seconds: float) -> float:
    """Acknowledged only once done: a worker killed mid-run leaves it to be redelivered."""
    time.sleep(seconds)
    return seconds


@app.task(name="tests.retrying", bind=True, max_retries=None)
def retrying(self, n: int) -> None:  # type: ignore[no-untyped-def]
    """Retries itself n times at once: a retry storm."""
    if n > 0:
        raise self.retry(args=(n - 1,), countdown=0)


@app.task(name="tests.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# A task name is user input: the status page must show this as text (tests/e2e/test_status_page).
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


@app.task(name=HOSTILE_NAME)
def hostile() -> None:
    raise ValueError("a task whose name is markup")
