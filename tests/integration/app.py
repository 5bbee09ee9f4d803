"""The Celery app the integration tests run real workers of (`celery -A tests.integration.app`)."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("sentinel_test", broker=os.environ.get("SENTINEL_TEST_BROKER", "memory://"))
app.conf.update(
    task_default_queue=os.environ.get("SENTINEL_TEST_QUEUE", "celery"),
    worker_send_task_events=True,
    task_send_sent_event=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_backend=None,
    worker_hijack_root_logger=False,
)


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tests.flaky")
def flaky(i: int) -> int:
    """Fails every other call: a 50% failure rate."""
    if i % 2:
        raise ValueError(f"flaky failure {i}")
    return i


@app.task(name="tests.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
