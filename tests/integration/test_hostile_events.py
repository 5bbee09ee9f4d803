"""Hostile events on a real Redis: what a message holds can cost that message, never the stream.

Poison is published as the exact bytes kombu's redis transport publishes for a Celery event (a
base64 body in a JSON envelope, see bench/_common.py), next to a real worker's own traffic.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sentinel.app import Sentinel
from sentinel.clock import SystemClock
from sentinel.collectors.events import EventCollector
from sentinel.collectors.redis_pubsub import MAX_MESSAGE
from sentinel.facts.store import FactStore
from sentinel.facts.windows import COUNTERS
from tests.helpers import ROOT, wait_for
from tests.integration.harness import config_for, firing, wait_firing, wait_live_workers

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"
MiB = 1 << 20
# What any one event message may cost the process, at most (README "Hostile events").
MEMORY_BOUND = 64 * MiB


def envelope(
    event: Any, routing_key: str, *, headers: dict[str, Any] | None = None, raw: bytes | None = None
) -> bytes:
    body = raw if raw is not None else json.dumps(event).encode()  # json: emits Infinity, NaN
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": "poison@attacker", **(headers or {})},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def poison(i: int) -> list[tuple[str, bytes]]:
    """One round of poison: impossible numbers in every field sentinel reads."""
    now = time.time()
    bad = ["inf", "nan", 1.7e308, -1.7e308, float("inf"), float("nan"), "-inf", -5.0][i % 8]
    tid = f"poison-{i}-{uuid.uuid4().hex[:6]}"
    sent = {"type": "task-sent", "uuid": tid, "name": "poison.task", "timestamp": now}
    started = {"type": "task-started", "uuid": tid, "hostname": "ghost@poison", "timestamp": bad}
    done = {"type": "task-succeeded", "uuid": tid, "timestamp": bad, "runtime": bad}
    far = {"type": "task-sent", "uuid": tid + "x", "name": "poison.task", "timestamp": 1.7e308}
    return [
        ("task.multi", envelope([sent, started, done, far], "task.multi")),
        (
            "worker.heartbeat",
            envelope(
                {
                    "type": "worker-heartbeat",
                    "hostname": f"ghost{i % 3}@poison",
                    "freq": bad,
                    "active": 0,
                    "processed": 0,
                    "timestamp": bad,
                },
                "worker.heartbeat",
            ),
        ),
    ]


@pytest.fixture
def sentinels() -> Iterator[list[Sentinel]]:
    running: list[Sentinel] = []
    yield running
    for s in running:
        s.stop()


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_poison_events_cost_nothing_but_themselves(
    broker, workers, producer, sentinels, tmp_path
) -> None:
    worker = workers("w1")
    s = Sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: NoLiveWorkers
          kind: no_live_workers
          severity: critical
        - name: BrokerUnreachable
          kind: broker_unreachable
          severity: critical
    """,
        )
    )
    sentinels.append(s)
    s.start()
    assert s.events.connected.wait(15)
    wait_live_workers(s, 1)
    client = redis.Redis.from_url(broker.url)
    prefix = "/0.celeryev/"

    stop = threading.Event()
    published = [0]

    def attack() -> None:  # 150 poison messages' worth of events, mixed with real traffic
        i = 0
        while not stop.is_set():
            for key, payload in poison(i):
                client.publish(prefix + key, payload)
                published[0] += 1
            i += 1
            stop.wait(0.1)

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    try:
        tasks = 40
        for i in range(tasks):
            producer.send_task("tests.add", args=(i, i))
        wait_for(lambda: published[0] >= 150, 60, message="150 poison messages published")
        series = wait_for(lambda: s.store.tasks.get("tests.add"), 30, message="real tasks seen")

        def totals() -> dict[str, int]:
            return dict(zip(COUNTERS, series.totals, strict=True))  # type: ignore[attr-defined]

        wait_for(lambda: totals()["succeeded"] >= tasks, 60, message="every real task counted")
        real = totals()
        assert (real["sent"], real["received"], real["started"], real["succeeded"]) == (
            tasks,
            tasks,
            tasks,
            tasks,
        ), real
        assert s.events.reconnects == 0
        assert s.store.drops.error == 0
        assert not firing(s, "BrokerUnreachable")
        assert not [a for a in s.book.alerts.values() if a.rule == "BrokerUnreachable"]
        assert s.store.ignored.runtime > 0 and s.store.ignored.freq > 0
        assert s.store.ignored.timestamp > 0
        with s.store.lock:  # a ghost's inf freq was not believed
            ghosts = [w for h, w in s.store.workers.items() if h.startswith("ghost")]
            assert ghosts and all(w.freq == 2.0 for w in ghosts)

        # The attack goes on, without heartbeats: a SIGKILLed worker pages in its usual time.
        stop.set()
        attacker.join(10)
        stop.clear()

        def task_poison() -> None:
            i = 1000
            while not stop.is_set():
                client.publish(prefix + "task.multi", poison(i)[0][1])
                i += 1
                stop.wait(0.1)

        attacker = threading.Thread(target=task_poison, daemon=True)
        attacker.start()
        wait_for(
            lambda: not any(w.alive(time.time()) for w in ghosts), 10, message="ghosts expired"
        )
        worker.kill()
        killed = time.monotonic()
        wait_firing(s, "NoLiveWorkers", timeout=30)
        detected = time.monotonic() - killed
        print(
            f"\npoison: {published[0]} poison messages, reconnects {s.events.reconnects}, "
            f"real tasks counted {real['succeeded']}/{tasks}, NoLiveWorkers {detected:.1f}s "
            f"after SIGKILL"
        )
        # heartbeat expiry (2 x 1 s) + one evaluation (1 s) + one inspect round (1 s) + slack,
        # as in test_rules_live
        assert detected < 7.0, f"detection took {detected:.1f}s"
        assert s.events.reconnects == 0
    finally:
        stop.set()
        attacker.join(10)
        client.close()


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _reset_hwm() -> int:
    """Peak RSS reset to the current RSS (Linux: clear_refs 5); the new baseline."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _hwm()


def bomb(name: str) -> bytes:
    """A message built to cost memory: compressed bombs, the densest JSON, a huge message."""
    if name == "bz2":  # 1 GiB of zeros in 785 bytes
        raw = (DATA / "bomb-1gib.bz2").read_bytes()
        return envelope(None, "task.multi", headers={"compression": "application/x-bz2"}, raw=raw)
    if name == "zlib":  # 256 MiB of zeros in ~250 KiB
        raw = zlib.compress(bytes(256 * MiB), 9)
        return envelope(None, "task.multi", headers={"compression": "application/x-gzip"}, raw=raw)
    if name == "dense":  # the JSON that inflates most as Python objects, under the size limit
        return envelope(None, "task.multi", raw=b"[" + b"{}," * (MAX_MESSAGE // 5) + b"{}]")
    # 20 times the limit (under Redis's own 32 MiB pubsub output limit, past which it cuts us)
    return b"x" * (20 * MiB)


def publish_bomb(url: str, name: str) -> None:
    """Run in a child process, so that building the bomb costs the test process nothing."""
    client = redis.Redis.from_url(url)
    client.publish("/0.celeryev/task.multi", bomb(name))
    client.close()


BOMBS = {"bz2": "refused", "zlib": "refused", "dense": "malformed", "huge": "oversize"}


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_no_event_message_costs_more_memory_than_the_bound(broker) -> None:
    store = FactStore()
    collector = EventCollector(_app(broker.url), store, SystemClock())
    collector.start()
    try:
        assert collector.connected.wait(15)
        for name, reason in BOMBS.items():
            before = store.drops.as_dict()[reason]
            base = _reset_hwm()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from tests.integration.test_hostile_events import publish_bomb;"
                    "publish_bomb(sys.argv[1], sys.argv[2])",
                    broker.url,
                    name,
                ],
                cwd=ROOT,
                check=True,
                timeout=120,
            )
            wait_for(
                lambda r=reason, b=before: store.drops.as_dict()[r] > b,  # type: ignore[misc]
                60,
                message=f"the {name} message dropped",
            )
            grew = _hwm() - base
            print(f"\n{name}: dropped as {reason}, peak RSS +{grew / MiB:.1f} MiB")
            assert grew < MEMORY_BOUND, f"{name}: +{grew / MiB:.0f} MiB"
        # The stream is still the same one, and still works.
        client = redis.Redis.from_url(broker.url)
        client.publish(
            "/0.celeryev/worker.heartbeat",
            envelope(
                {"type": "worker-heartbeat", "hostname": "w@h", "freq": 2.0, "active": 0},
                "worker.heartbeat",
            ),
        )
        client.close()
        wait_for(lambda: "w@h" in store.workers, 15, message="a good event after the bombs")
        assert collector.reconnects == 0
        assert store.drops.error == 0
    finally:
        collector.stop()


def _app(url: str) -> Any:
    from celery import Celery

    return Celery("hostile", broker=url, set_as_current=False)
