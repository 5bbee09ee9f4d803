"""The Celery app bench/detect.py runs a real worker of (`celery -A bench.celeryapp worker`)."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("sentinel_bench", broker=os.environ.get("SENTINEL_BENCH_BROKER", "memory://"))
app.conf.update(
    worker_send_task_events=True,
    task_send_sent_event=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    result_backend=None,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.ok")
def ok(i: int) -> int:
    return i


@app.task(name="bench.fail")
def fail(i: int) -> int:
    raise ValueError(f"bench failure {i}")
