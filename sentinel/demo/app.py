"""The Celery app the demo workers run (`celery -A sentinel.demo.app worker`).

The broker is kombu's `filesystem://` transport under $SENTINEL_DEMO_DIR, so the demo needs no
Redis or RabbitMQ: producer, workers and sentinel exchange messages as files in one folder.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down

from sentinel.collectors.filesystem_transport import TRANSPORT

# An explicit host keeps kombu from warning "No hostname was supplied" on every connection.
BROKER_URL = "filesystem://localhost/"
DEFAULT_QUEUE = "default"
BULK_QUEUE = "images"
LEGACY_QUEUE = "legacy"  # what an old release still sends to; no worker consumes it any more
ENV_DIR = "SENTINEL_DEMO_DIR"


def transport_options(root: Path) -> dict[str, Any]:
    """Options every process on the demo broker shares (sentinel's config repeats them)."""
    data = root / "broker" / "data"
    return {
        # One folder for in and out: every process both publishes and consumes there.
        "data_folder_in": str(data),
        "data_folder_out": str(data),
        # Bindings live here, so fanout (remote control) and topic (events) cross processes.
        "control_folder": str(root / "broker" / "control"),
        # The virtual transport polls; at the 1 s default a 1 s inspect would miss replies.
        "polling_interval": 0.1,
    }


def prepare_dirs(root: Path) -> None:
    options = transport_options(root)
    for key in ("data_folder_in", "control_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)


def make_app(root: Path) -> Celery:
    app = Celery("sentinel_demo", broker=BROKER_URL, set_as_current=False)
    app.conf.update(
        # Stock kombu lets a reader take a half-written message file and crash on it.
        broker_transport=TRANSPORT,
        broker_transport_options=transport_options(root),
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_default_queue=DEFAULT_QUEUE,
        task_routes={
            "demo.resize_image": {"queue": BULK_QUEUE},
            "demo.legacy_sync": {"queue": LEGACY_QUEUE},
        },
        task_send_sent_event=True,
        worker_send_task_events=True,
        # One message at a time per thread, so a burst waits in the broker where it is seen.
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app


class PaymentDeclined(Exception):
    pass


app = make_app(Path(os.environ.get(ENV_DIR, ".")).resolve())


@app.task(name="demo.send_email")
def send_email(to: str) -> str:
    time.sleep(random.uniform(0.01, 0.05))
    return f"sent to {to}"


@app.task(name="demo.charge_card")
def charge_card(order: int, fail_ratio: float = 0.3) -> int:
    time.sleep(random.uniform(0.02, 0.08))
    if random.random() < fail_ratio:
        raise PaymentDeclined(f"order {order}: card declined")
    return order


@app.task(name="demo.render_report")
def render_report(report: int, seconds: float = 2.5) -> int:
    time.sleep(seconds)
    return report


# Set when this worker begins a warm shutdown, so a hung task does not hold the demo's stop.
_shutting_down = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kw: Any) -> None:
    _shutting_down.set()


@app.task(name="demo.export_archive")
def export_archive(seconds: float = 600.0) -> None:
    """Hangs (a lock never released, a socket never answered): the stuck task, and the lost one
    once its worker is killed under it. Returns when its worker is asked to stop."""
    _shutting_down.wait(seconds)


@app.task(name="demo.nightly_digest")
def nightly_digest() -> None:
    """What the demo's stand-in for celery beat sends every 2 s, until beat stops."""


@app.task(name="demo.legacy_sync")
def legacy_sync(n: int) -> int:
    return n


@app.task(name="demo.resize_image")
def resize_image(image: int, seconds: float = 0.25) -> int:
    time.sleep(seconds)
    return image
