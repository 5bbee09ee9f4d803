"""Kill the broker and bring it back: sentinel notices (BrokerUnreachable fires, other rules
hold rather than guess), reconnects on its own, and events flow again. A private redis-server
on a free port, so the shared one is never touched."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from sentinel.app import Sentinel
from sentinel.model import State
from tests.helpers import Broker, Worker, wait_for
from tests.integration.harness import config_for, firing, wait_firing, wait_live_workers
from tests.services import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def _heartbeat(hostname: str) -> bytes:
    """A worker heartbeat as kombu's redis transport publishes it (see bench/_common.py)."""
    event = {"type": "worker-heartbeat", "hostname": hostname, "freq": 2.0, "active": 0}
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(event).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": hostname},
            "properties": {"body_encoding": "base64", "delivery_tag": "probe"},
        }
    ).encode()


def _long_wait_started(caplog: pytest.LogCaptureFixture, since: int) -> bool:
    """The collector has just begun a reconnect wait of 10 s or more (its backoff grew)."""
    for record in caplog.records[since:]:
        m = re.search(r"reconnecting in ([\d.]+)s", record.getMessage())
        if m and float(m.group(1)) >= 10:
            return True
    return False


def test_broker_restart_is_noticed_and_events_resume(redis_server, tmp_path, caplog):
    broker = Broker("redis", f"redis://127.0.0.1:{redis_server.port}/0", "outage-q")
    worker = Worker(broker, "outage", broker.queue, tmp_path)
    sentinel: Sentinel | None = None
    try:
        worker.wait_ready()
        sentinel = Sentinel(
            config_for(
                broker,
                tmp_path,
                """
            - name: BrokerUnreachable
              kind: broker_unreachable
              severity: critical
            - name: NoLiveWorkers
              kind: no_live_workers
        """,
            )
        )
        sentinel.start()
        wait_live_workers(sentinel, 1)
        assert not firing(sentinel, "BrokerUnreachable")

        redis_server.kill()
        killed = time.monotonic()
        alert = wait_firing(sentinel, "BrokerUnreachable", timeout=30)
        assert alert.labels["severity"] == "critical"
        wait_for(
            lambda: not sentinel.events.connected.is_set(), 30, message="the lost stream noticed"
        )
        # Down for 30 s, long enough for the backoff to have grown past 10 s; restarted just
        # as a wait that long begins, the worst case for a collector that only waits it out.
        caplog.set_level(logging.WARNING, "sentinel.events")
        wait_for(lambda: time.monotonic() - killed >= 30, 40, message="30 s of outage")
        seen = len(caplog.records)
        wait_for(lambda: _long_wait_started(caplog, seen), 90, message="a long reconnect wait")

        beats = sentinel.store.events_by_type["worker-heartbeat"]
        redis_server.start()
        restarted = time.monotonic()
        wait_for(lambda: sentinel.events.connected.is_set(), 10, message="event stream back")
        reconnected = time.monotonic() - restarted
        # Events published now reach sentinel (the worker's own reconnect, up to kombu's 30 s,
        # is the worker's business: it has RECONNECT_GRACE for that).
        client = redis.Redis(port=redis_server.port)

        def probe_seen() -> bool:
            client.publish("/0.celeryev/worker.heartbeat", _heartbeat("probe@outage"))
            return "probe@outage" in sentinel.store.workers

        wait_for(probe_seen, 10 - reconnected, interval=0.05, message="events within 10 s")
        flowing = time.monotonic() - restarted
        client.close()
        print(f"\nbroker restart -> stream subscribed {reconnected:.1f}s, events {flowing:.1f}s")
        assert flowing < 10
        wait_for(
            lambda: sentinel.store.events_by_type["worker-heartbeat"] > beats + 2,
            60,
            message="the worker's heartbeats flowing again",
        )
        producer = Celery(broker=broker.url, set_as_current=False)
        producer.conf.task_default_queue = broker.queue
        done = sentinel.store.events_by_type["task-succeeded"]

        def task_seen() -> bool:
            producer.send_task("tests.add", args=(1, 1))
            return sentinel.store.events_by_type["task-succeeded"] > done

        wait_for(task_seen, 60, interval=1.0, message="task events after the restart")
        producer.close()
        wait_for(
            lambda: all(
                a.state is State.RESOLVED
                for a in sentinel.book.alerts.values()
                if a.rule == "BrokerUnreachable"
            ),
            30,
            message="broker alert resolved",
        )
        # Heartbeats stopped because the broker did, not the worker: no false NoLiveWorkers.
        assert not [a for a in sentinel.book.alerts.values() if a.rule == "NoLiveWorkers"]
    finally:
        if sentinel is not None:
            sentinel.stop()
        worker.stop()
