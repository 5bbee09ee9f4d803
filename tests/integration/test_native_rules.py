"""The Celery-native kinds (issue 12) against real brokers, real `celery worker` processes and
a real `celery beat`. Each test prints `fault-to-page <kind> <broker> <seconds>`: the time from
the fault to the page arriving at a local webhook receiver (run with -s to read them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from sentinel.app import Sentinel
from sentinel.config import Config
from sentinel.model import State
from tests.helpers import ROOT, Broker, wait_for
from tests.integration.harness import (
    alerts,
    config_for,
    firing,
    wait_firing,
    wait_live_workers,
    wait_resolved,
)
from tests.receivers import Receiver

pytestmark = pytest.mark.integration
# Kinds decided from the event stream and sentinel's own clock alone: how the broker carries
# events is covered on both brokers by the kinds that do depend on it (events_missing,
# lost_task's redelivery, the queue kinds' depth), so these run on Redis only (~1 min of suite).
ONE_BROKER = pytest.mark.parametrize("broker", ["redis"], indirect=True)


def paged_config(broker: Broker, tmp_path: Path, pager: Receiver, rules: str, **kw: Any) -> Config:
    """The harness's config, paging `pager` (a local webhook) the moment an alert fires."""
    route = f"""
route:
  channels: [pager]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
channels:
  pager:
    type: webhook
    url: "{pager.url}/alerts"
"""
    kw["extra"] = route + kw.get("extra", "")
    return config_for(broker, tmp_path, rules, **kw)


@pytest.fixture
def pager() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def measured(
    kind: str, broker: Broker, since: float, pager: Receiver | None = None, alertname: str = ""
) -> float:
    """Seconds from the fault to the firing page for `alertname` (to the first page at all
    when no pager is given: the watchdog's own receiver)."""
    if pager is not None:

        def paged() -> bool:
            return any(
                b["status"] == "firing"
                and any(a["labels"]["alertname"] == alertname for a in b["alerts"])
                for b in pager.bodies()
            )

        wait_for(paged, 15, message=f"the {alertname} page")
    seconds = time.monotonic() - since
    print(f"\nfault-to-page {kind} {broker.kind} {seconds:.1f}")
    return seconds


# A solo worker blocked in a task sends nothing meanwhile (its task events are buffered until
# its event loop runs again, after the task) and answers no inspect: what runs must run in a
# prefork child for sentinel to see it running.
PREFORK = {"pool": "prefork", "concurrency": 1}


@pytest.fixture
def run_sentinel() -> Iterator[Callable[..., Sentinel]]:
    running: list[Sentinel] = []

    def start(config: Config, before_start: Callable[[Sentinel], None] | None = None) -> Sentinel:
        s = Sentinel(config)
        if before_start is not None:
            before_start(s)
        s.start()
        running.append(s)
        assert s.events.connected.wait(15), "event stream did not connect"
        return s

    yield start
    for s in running:
        s.stop()


# -- stuck_task -------------------------------------------------------------------------------


@ONE_BROKER
def test_stuck_task_fires_while_it_runs_and_resolves_when_it_finishes(
    broker, workers, producer, run_sentinel, tmp_path, pager
):
    workers("w1", **PREFORK)
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: StuckTask
          kind: stuck_task
          tasks: ["tests.*"]
          running_for: 3s
    """,
        )
    )
    wait_live_workers(s, 1)
    producer.send_task("tests.sleep", args=(12,))
    wait_for(lambda: len(s.store.running) == 1, 20, message="the task started")
    started = time.monotonic()
    alert = wait_firing(s, "StuckTask", task="tests.sleep", timeout=20)
    assert (
        measured("stuck_task", broker, started, pager, "StuckTask") < 3 + 1 + 2 + 1
    )  # + 1: the send
    assert " on " in alert.annotations["task_ids"]
    assert alert.value is not None and alert.value >= 3
    wait_resolved(s, "StuckTask", task="tests.sleep", timeout=30)


class DropSucceeded:
    """The fact store as the event collector sees it, minus every task-succeeded: the feed
    of a sentinel that lost the finishing events."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.dropped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def apply_events(self, events: list[dict[str, Any]], now: float) -> None:
        kept = [e for e in events if e.get("type") != "task-succeeded"]
        self.dropped += len(events) - len(kept)
        self._store.apply_events(kept, now)


def test_a_lost_task_succeeded_is_cleared_by_the_next_inspect_active(
    broker, workers, producer, run_sentinel, tmp_path
):
    workers("w1", **PREFORK)
    feed: list[DropSucceeded] = []

    def lose_successes(s: Sentinel) -> None:
        feed.append(DropSucceeded(s.events.store))
        s.events.store = feed[0]  # type: ignore[assignment]

    s = run_sentinel(
        config_for(
            broker,
            tmp_path,
            """
        - name: StuckTask
          kind: stuck_task
          running_for: 2s
    """,
        ),
        before_start=lose_successes,
    )
    wait_live_workers(s, 1)
    producer.send_task("tests.sleep", args=(5,))
    wait_firing(s, "StuckTask", task="tests.sleep", timeout=20)
    wait_for(lambda: feed[0].dropped >= 1, 20, message="the task-succeeded dropped")
    finished = time.monotonic()
    wait_resolved(s, "StuckTask", task="tests.sleep", timeout=10)
    # one inspect round (1 s) + its timeout (1 s) + one evaluation (1 s)
    assert time.monotonic() - finished < 5
    assert s.store.running.confirmed_finished >= 1


# -- lost_task --------------------------------------------------------------------------------


def test_lost_task_on_sigkill_mid_task_and_cleared_when_redelivered_and_finished(
    broker, workers, producer, run_sentinel, tmp_path, pager
):
    fast_redelivery = {"SENTINEL_TEST_VISIBILITY": "3"}
    w1 = workers("w1", env=fast_redelivery, **PREFORK)
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: LostTask
          kind: lost_task
          window: 10m
          severity: error
    """,
        )
    )
    wait_live_workers(s, 1)
    producer.send_task("tests.sleep_late", args=(6,))
    wait_for(lambda: len(s.store.running) == 1, 20, message="the task started")
    w1.kill()
    killed = time.monotonic()
    alert = wait_firing(s, "LostTask", task="tests.sleep_late", timeout=20)
    # heartbeat expiry (2 x 1 s), then at once (the liveness watch, every 1 s)
    assert measured("lost_task", broker, killed, pager, "LostTask") < 2 + 1 + 3 + 1
    assert alert.value == 1 and w1.hostname in alert.annotations["task_ids"]
    # acks_late: the broker gives the task to the next worker, which runs it to the end. Redis
    # restores an unacknowledged message once it is older than the visibility timeout (3 s),
    # when a consumer starts or every so often after: start w2 past it.
    wait_for(lambda: time.monotonic() - killed > 4, 10, message="the visibility timeout")
    workers("w2", env=fast_redelivery)
    wait_resolved(s, "LostTask", task="tests.sleep_late", timeout=60)


# -- queue_unconsumed -------------------------------------------------------------------------


def test_queue_unconsumed_after_a_rename(broker, workers, producer, run_sentinel, tmp_path, pager):
    old = f"{broker.queue}-old"
    broker.queues_to_clean.append(old)
    workers("w1")  # consumes only broker.queue: the deploy renamed `old` to it
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: QueueUnconsumed
          kind: queue_unconsumed
    """,
            queues=[broker.queue, old],
        )
    )
    wait_live_workers(s, 1)
    sent = time.monotonic()
    for i in range(3):
        producer.send_task("tests.add", args=(i, i), queue=old)
    alert = wait_firing(s, "QueueUnconsumed", queue=old, timeout=20)
    measured("queue_unconsumed", broker, sent, pager, "QueueUnconsumed")
    assert alert.value == 3
    producer.send_task("tests.add", args=(1, 1))
    s.evaluate()
    assert not firing(s, "QueueUnconsumed", queue=broker.queue)
    workers("w2", queue=old)  # someone consumes it again
    wait_resolved(s, "QueueUnconsumed", queue=old, timeout=30)


# -- queue_stalled ----------------------------------------------------------------------------


def test_queue_stalled_when_the_only_slot_is_held_but_not_while_moving(
    broker, workers, producer, run_sentinel, tmp_path, pager
):
    # prefork -c 1: the main process keeps heartbeating and answering, its one slot is busy.
    workers("w1", **PREFORK)
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: QueueStalled
          kind: queue_stalled
          stalled_for: 4s
    """,
        )
    )
    wait_live_workers(s, 1)
    # Moving: a backlog the worker works through is deep but not stalled.
    for _ in range(60):
        producer.send_task("tests.sleep", args=(0.1,))
    wait_for(
        lambda: (q := s.store.queues.get(broker.queue)) is not None and q.depth,
        10,
        message="a backlog",
    )
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and (s.store.queues[broker.queue].depth or 0) > 0:
        s.evaluate()
        assert not firing(s, "QueueStalled"), "a moving queue was called stalled"
        time.sleep(0.5)
    wait_for(lambda: s.store.queues[broker.queue].depth == 0, 30, message="the backlog drained")
    # Stalled: the only slot held by a long task while messages wait.
    producer.send_task("tests.sleep", args=(25,))
    wait_for(lambda: len(s.store.running) == 1, 20, message="the long task started")
    for i in range(3):
        producer.send_task("tests.add", args=(i, i))
    waiting = time.monotonic()
    alert = wait_firing(s, "QueueStalled", queue=broker.queue, timeout=30)
    measured("queue_stalled", broker, waiting, pager, "QueueStalled")
    assert alert.value is not None and alert.value >= 4
    assert not firing(s, "QueueStalled", queue="nothing")
    with Connection(broker.url) as conn:
        conn.default_channel.queue_purge(broker.queue)
    wait_resolved(s, "QueueStalled", queue=broker.queue, timeout=20)


# -- worker_flapping --------------------------------------------------------------------------


@ONE_BROKER
def test_worker_flapping_when_one_name_restarts_three_times(
    broker, workers, run_sentinel, tmp_path, pager
):
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: WorkerFlapping
          kind: worker_flapping
          restarts: 3
          window: 2m
    """,
        )
    )
    hostname = f"flappy-{os.getpid()}@test"
    first = workers("w1", hostname=hostname)
    wait_live_workers(s, 1)
    first.stop()
    for _ in range(3):
        w = workers("w1", hostname=hostname)
        back = time.monotonic()
        wait_live_workers(s, 1)
        w.stop()
    alert = wait_firing(s, "WorkerFlapping", worker=hostname, timeout=20)
    measured("worker_flapping", broker, back, pager, "WorkerFlapping")
    assert alert.value == 3


# -- task_rate --------------------------------------------------------------------------------


@ONE_BROKER
def test_task_rate_above_on_a_retry_storm_and_below_when_a_producer_stops(
    broker, workers, producer, run_sentinel, tmp_path, pager
):
    workers("w1")
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            """
        - name: RetryStorm
          kind: task_rate
          tasks: ["tests.retrying"]
          event: retried
          window: 4s
          above: 2
        - name: ThroughputDrop
          kind: task_rate
          tasks: ["tests.add"]
          event: succeeded
          window: 4s
          below: 0.5
    """,
        )
    )
    wait_live_workers(s, 1)
    storm = time.monotonic()
    producer.send_task("tests.retrying", args=(400,))
    alert = wait_firing(s, "RetryStorm", task="tests.retrying", timeout=30)
    measured("task_rate(above)", broker, storm, pager, "RetryStorm")
    assert alert.value is not None and alert.value > 2
    with Connection(broker.url) as conn:
        conn.default_channel.queue_purge(broker.queue)  # the storm's remaining retries
    # A steady producer, 5/s, then nothing.
    end = time.monotonic() + 6
    while time.monotonic() < end:
        producer.send_task("tests.add", args=(1, 1))
        time.sleep(0.2)
    s.evaluate()
    assert not firing(s, "ThroughputDrop")
    stopped = time.monotonic()
    wait_firing(s, "ThroughputDrop", task="tests.add", timeout=20)
    measured("task_rate(below)", broker, stopped, pager, "ThroughputDrop")


# -- events_missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("events", ["off", "no-heartbeats", "on"])
def test_events_missing_when_events_are_off_and_not_when_on(
    events, broker, workers, producer, run_sentinel, tmp_path, pager
):
    """off: no -E, worker_send_task_events off, enable_events off: heartbeats (worker events)
    still arrive, task events not. no-heartbeats: not even those; only ping answers."""
    on = events == "on"
    # Alive by ping alone lasts 2 x inspect_interval + timeout (3 s here) from each round's
    # start; a round later than that still leaves a gap, and a `for` would restart at it.
    hold = "0s" if events == "no-heartbeats" else "2s"
    workers("w1", events=on, heartbeats=events != "no-heartbeats")
    s = run_sentinel(
        paged_config(
            broker,
            tmp_path,
            pager,
            f"""
        - name: EventsMissing
          kind: events_missing
          for: {hold}
          window: 1m
          min_count: 5
    """,
            celery=f"enable_events: {str(on).lower()}",
        )
    )
    if events == "no-heartbeats":
        wait_for(lambda: s.store.workers, 20, message="a ping answer")
    else:
        # The work is measured from a worker's first heartbeat: what it did before is unknown.
        wait_for(lambda: s.store.coverage.workers, 20, message="the first heartbeat")
    started = time.monotonic()
    for i in range(10):
        producer.send_task("tests.add", args=(i, i))
    if not on:
        alert = wait_firing(s, "EventsMissing", timeout=40)
        # Ping-only, the worker flickers alive/dead between inspect rounds (README): the alert
        # may fire and resolve before a flush, so that case is timed to firing, not to a page.
        paged = pager if events != "no-heartbeats" else None
        measured(f"events_missing({events})", broker, started, paged, "EventsMissing")
        assert alert.value == 1.0
        return
    wait_for(
        lambda: s.store.tasks.get("tests.add") and s.store.tasks["tests.add"].totals[3] == 10,
        30,
        message="the tasks' events",
    )
    wait_for(lambda: time.monotonic() - started > 12, 20, message="time for a verdict")
    s.evaluate()
    assert not [a for a in alerts(s, "EventsMissing") if a.state is not State.RESOLVED]


# -- periodic_task with a real celery beat ------------------------------------------------------


class Beat:
    """A real `celery beat` of tests.integration.app (its schedule: tests.tick every 2 s)."""

    def __init__(self, broker: Broker, tmp_path: Path) -> None:
        env = {
            **os.environ,
            "SENTINEL_TEST_BROKER": broker.url,
            "SENTINEL_TEST_QUEUE": broker.queue,
            "PYTHONPATH": str(ROOT),
        }
        self.log_path = tmp_path / f"beat-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integration.app",
                "beat",
                "-s",
                str(tmp_path / "beat-schedule"),
                "--pidfile=",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

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
def beat(broker: Broker, tmp_path: Path) -> Iterator[Callable[[], Beat]]:
    started: list[Beat] = []

    def start() -> Beat:
        b = Beat(broker, tmp_path)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@ONE_BROKER
def test_periodic_task_with_a_real_beat(broker, workers, beat, run_sentinel, tmp_path, pager):
    workers("w1")
    config = paged_config(
        broker,
        tmp_path,
        pager,
        """
        - name: BeatMissed
          kind: periodic_task
          tasks: ["tests.tick"]      # every: from the app's beat_schedule (2 s)
          grace: 2s
    """,
        celery='app: "tests.integration.app:app"',
    )
    s = run_sentinel(config)
    assert s.store.periodic.schedule == {"tests.tick": 2.0}
    b = beat()
    wait_for(lambda: s.store.periodic.sent.get("tests.tick"), 30, message="beat sending")
    s.evaluate()
    assert not firing(s, "BeatMissed")
    b.stop()
    stopped = time.monotonic()
    wait_firing(s, "BeatMissed", task="tests.tick", timeout=20)
    # every + grace + one evaluation (1 s), from the last run before the stop
    assert measured("periodic_task", broker, stopped, pager, "BeatMissed") < 2 + 2 + 1 + 2 + 1
    b = beat()
    wait_resolved(s, "BeatMissed", task="tests.tick", timeout=30)

    # Sentinel restarted while beat is dead: still firing, no fresh pending.
    b.stop()
    wait_firing(s, "BeatMissed", task="tests.tick", timeout=20)
    s.stop()
    again = Sentinel(config)
    try:
        transitions, _ = again.evaluate()
        assert firing(again, "BeatMissed", task="tests.tick")
        assert not [t for t in transitions if t.alert is not None and t.alert.rule == "BeatMissed"]
    finally:
        again.db.close() if again.db is not None else None


# -- watchdog ---------------------------------------------------------------------------------


@ONE_BROKER
def test_watchdog_fires_at_start_repeats_and_stops_with_sentinel(broker, run_sentinel, tmp_path):
    receiver = Receiver()
    try:
        config = config_for(
            broker,
            tmp_path,
            """
        - name: Watchdog
          kind: watchdog
          severity: info
    """,
            extra=f"""
route:
  channels: [deadmansswitch]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
channels:
  deadmansswitch:
    type: webhook
    url: "{receiver.url}/ping"
""",
        )
        s = run_sentinel(config)
        started = time.monotonic()
        wait_for(lambda: receiver.bodies(), 15, message="the first watchdog page")
        measured("watchdog", broker, started)
        wait_for(lambda: len(receiver.bodies()) >= 3, 20, message="repeats")
        body = receiver.bodies()[0]
        assert body["status"] == "firing"
        assert body["alerts"][0]["labels"]["alertname"] == "Watchdog"
        s.stop()
        after = len(receiver.bodies())
        time.sleep(4)  # two repeat intervals: nothing more once sentinel is gone
        assert len(receiver.bodies()) == after
        assert all(b["status"] == "firing" for b in receiver.bodies())  # never a resolve
    finally:
        receiver.close()
