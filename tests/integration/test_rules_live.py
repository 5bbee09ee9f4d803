"""Each rule kind against a real broker (Redis and RabbitMQ) and real `celery worker` processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from sentinel.app import Sentinel
from sentinel.config import Config
from sentinel.model import State
from tests.helpers import wait_for
from tests.integration.harness import (
    alerts,
    config_for,
    firing,
    wait_firing,
    wait_live_workers,
    wait_resolved,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def run_sentinel() -> Iterator[object]:
    running: list[Sentinel] = []

    def start(config: Config) -> Sentinel:
        s = Sentinel(config)
        s.start()
        running.append(s)
        assert s.events.connected.wait(15), "event stream did not connect"
        return s

    yield start
    for s in running:
        s.stop()


def test_no_live_workers_fires_after_sigkill_and_resolves(broker, workers, run_sentinel, tmp_path):
    worker = workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: NoLiveWorkers
          kind: no_live_workers
          severity: critical
    """,
        )
    )
    wait_live_workers(s, 1)
    assert not firing(s, "NoLiveWorkers")

    worker.kill()
    killed = time.monotonic()
    alert = wait_firing(s, "NoLiveWorkers", timeout=20)
    detected = time.monotonic() - killed
    # heartbeat expiry (2 x 1 s) + one evaluation interval (1 s) + one inspect round (1 s)
    assert detected < 2 * 1.0 + 1.0 + 1.0 + 3.0, f"detection took {detected:.1f}s"
    assert alert.value == 0 and alert.threshold == 1
    assert alert.labels["severity"] == "critical"

    workers("w2")
    wait_resolved(s, "NoLiveWorkers", timeout=20)


def test_queue_backlog_on_parked_messages(broker, producer, run_sentinel, tmp_path):
    parked = f"{broker.queue}-parked"
    broker.queues_to_clean.append(parked)
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: QueueBacklog
          kind: queue_backlog
          queues: ["*-parked"]
          threshold: 4
    """,
            queues=[broker.queue, parked],
        )
    )
    for i in range(6):
        producer.send_task("tests.add", args=(i, i), queue=parked)
    alert = wait_firing(s, "QueueBacklog", queue=parked)
    assert alert.value == 6 and alert.threshold == 4
    assert not [a for a in alerts(s, "QueueBacklog") if a.labels["queue"] == broker.queue]

    with Connection(broker.url) as conn:
        conn.default_channel.queue_purge(parked)
    wait_resolved(s, "QueueBacklog", queue=parked)


def test_failure_rate_fires_for_the_failing_task_only(
    broker, workers, producer, run_sentinel, tmp_path
):
    workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: TaskFailureRate
          kind: failure_rate
          tasks: ["tests.*"]
          window: 8s
          threshold: 20%
          min_count: 10
          severity: error
    """,
        )
    )
    for i in range(20):
        producer.send_task("tests.flaky", args=(i,))
        producer.send_task("tests.add", args=(i, 1))
    alert = wait_firing(s, "TaskFailureRate", task="tests.flaky")
    assert 0.4 <= alert.value <= 0.6
    assert alert.labels["severity"] == "error"
    wait_for(
        lambda: s.store.tasks.get("tests.add") and s.store.tasks["tests.add"].totals[3] == 20,
        20,
        message="adds succeeded",
    )
    assert not firing(s, "TaskFailureRate", task="tests.add")
    # An empty window is no verdict: the alert holds once the failures leave it...
    wait_for(
        lambda: s.clock.now() - (alert.fired_at or 0.0) > 15,
        30,
        message="the window emptied",
    )
    s.evaluate()
    assert firing(s, "TaskFailureRate", task="tests.flaky")
    # ...and resolves on runs that succeed.
    for i in range(0, 40, 2):
        producer.send_task("tests.flaky", args=(i,))
    wait_resolved(s, "TaskFailureRate", timeout=30, task="tests.flaky")


def test_task_latency_p95_runtime(broker, workers, producer, run_sentinel, tmp_path):
    workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: SlowTasks
          kind: task_latency
          tasks: ["tests.sleep"]
          measure: runtime
          percentile: 95
          threshold: 300ms
          window: 8s
          min_count: 3
    """,
        )
    )
    for _ in range(4):
        producer.send_task("tests.sleep", args=(0.6,))
    alert = wait_firing(s, "SlowTasks", task="tests.sleep")
    assert 0.55 <= alert.value <= 1.0, alert.value
    assert alert.threshold == pytest.approx(0.3)
    wait_resolved(s, "SlowTasks", timeout=30, task="tests.sleep")


def test_idle_worker_fires_then_resolves_on_work(broker, workers, producer, run_sentinel, tmp_path):
    worker = workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: IdleWorker
          kind: idle_worker
          idle_for: 3s
          severity: info
    """,
        )
    )
    alert = wait_firing(s, "IdleWorker", worker=worker.hostname)
    assert alert.value >= 3
    producer.send_task("tests.add", args=(1, 2))
    wait_resolved(s, "IdleWorker", worker=worker.hostname)


def test_restart_keeps_firing_alert_without_new_pending(broker, run_sentinel, tmp_path):
    rules = """
        - name: NoLiveWorkers
          kind: no_live_workers
          for: 2s
    """
    config = config_for(broker, tmp_path, rules)
    first = run_sentinel(config)
    alert = wait_firing(first, "NoLiveWorkers")
    first.stop()

    second = Sentinel(config)
    seen: list[object] = []
    second.on_transitions.append(seen.extend)
    restored = second.book.alerts[alert.fingerprint]
    assert restored.state is State.FIRING and restored.fired_at == alert.fired_at
    second.start()
    try:
        wait_for(lambda: second.store.probes.get("inspect"), 10, message="first inspect")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            second.evaluate()
        assert second.book.alerts[alert.fingerprint].state is State.FIRING
        assert second.book.alerts[alert.fingerprint].active_at == alert.active_at
        assert all(t.alert is None or t.alert.state is not State.PENDING for t in seen), seen
    finally:
        second.stop()


def test_malformed_events_are_counted_and_skipped(
    broker, workers, producer, run_sentinel, tmp_path
):
    workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: TaskFailureRate
          kind: failure_rate
          threshold: 50%
    """,
        )
    )
    from celery.events.event import get_exchange
    from kombu import Producer

    with Connection(broker.url) as conn:
        exchange = get_exchange(conn)  # fanout on Redis, topic on RabbitMQ, as Celery does
        p = Producer(conn.default_channel, exchange=exchange, serializer="json")
        p.publish({"no": "type"}, routing_key="task.bogus")
        p.publish("not an event", routing_key="task.bogus")
        p.publish(
            {"type": "task-started", "uuid": uuid.uuid4().hex, "timestamp": "x"},
            routing_key="task.started",
        )
    producer.send_task("tests.add", args=(1, 1))
    wait_for(lambda: s.store.drops.malformed >= 3, 15, message="malformed events counted")
    wait_for(
        lambda: s.store.tasks.get("tests.add") and s.store.tasks["tests.add"].totals[3] >= 1,
        15,
        message="good event still ingested after the bad ones",
    )


def _ingested(s: Sentinel) -> int:
    return s.store.events_by_type["task-succeeded"]


def test_events_resume_after_subscription_is_dropped(
    broker, workers, producer, run_sentinel, tmp_path
):
    workers("w1")
    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: NoLiveWorkers
          kind: no_live_workers
    """,
        )
    )
    producer.send_task("tests.add", args=(1, 1))
    wait_for(lambda: _ingested(s) >= 1, 15, message="first task seen")

    if broker.kind == "redis":
        import redis

        redis.Redis.from_url(broker.url).client_kill_filter(_type="pubsub")
    else:
        import subprocess

        vhost = broker.url.rsplit("/", 1)[1]  # only this run's connections, never anyone else's
        subprocess.run(
            ["rabbitmqctl", "close_all_connections", "-p", vhost, "sentinel test"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    wait_for(
        lambda: s.events.reconnects >= 1 or not s.events.connected.is_set(),
        20,
        message="the lost subscription noticed",
    )
    wait_for(lambda: s.events.connected.is_set(), 30, message="subscription re-established")
    before = _ingested(s)

    def resumed() -> bool:
        producer.send_task("tests.add", args=(2, 2))
        return _ingested(s) > before

    wait_for(resumed, 30, interval=1.0, message="events resumed")


def test_worker_death_is_evaluated_at_its_heartbeat_deadline(
    broker, workers, run_sentinel, tmp_path
):
    """With a long evaluation interval, a dead worker still fires within seconds: liveness
    changes trigger an evaluation of their own."""
    worker = workers("w1")
    config = config_for(
        broker,
        tmp_path,
        """
        - name: NoLiveWorkers
          kind: no_live_workers
    """,
    )
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"interval": 300.0})}
    )
    s = run_sentinel(config)
    wait_live_workers(s, 1)
    worker.kill()
    killed = time.monotonic()
    wait_firing(s, "NoLiveWorkers", timeout=15)
    assert time.monotonic() - killed < 2 * 1.0 + 1.0 + 3.0
