from __future__ import annotations

from typing import Any

import orjson
import pytest

from sentinel.clock import FakeClock
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import HISTOGRAM_BOUNDS
from sentinel.facts.windows import (
    COUNTERS,
    QUEUE_WAIT,
    RUNTIME,
    TOTAL,
)
from tests.helpers import T0

HOST = "w1@host"


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def sent(uuid: str, name: str = "app.add", ts: float = T0) -> dict[str, Any]:
    return ev("task-sent", uuid=uuid, name=name, timestamp=ts, queue="celery")


def received(uuid: str, name: str = "app.add", ts: float = T0) -> dict[str, Any]:
    return ev("task-received", uuid=uuid, name=name, timestamp=ts, hostname=HOST)


def started(uuid: str, ts: float = T0, hostname: str = HOST) -> dict[str, Any]:
    return ev("task-started", uuid=uuid, timestamp=ts, hostname=hostname, pid=1)


def succeeded(uuid: str, ts: float = T0, runtime: float | None = None) -> dict[str, Any]:
    event = ev("task-succeeded", uuid=uuid, timestamp=ts, hostname=HOST, result="1")
    if runtime is not None:
        event["runtime"] = runtime
    return event


def failed(uuid: str, ts: float = T0) -> dict[str, Any]:
    return ev("task-failed", uuid=uuid, timestamp=ts, hostname=HOST, exception="ValueError()")


def heartbeat(hostname: str = HOST, freq: float = 2.0, **fields: Any) -> dict[str, Any]:
    return ev("worker-heartbeat", hostname=hostname, freq=freq, timestamp=T0, **fields)


def ping(store: FactStore, hostname: str, at: float, ttl: float) -> None:
    """An inspect pass at `at` in which `hostname` answered the ping."""
    store.set_inspect(
        pings={hostname},
        pinged_at=at,
        ping_ttl=ttl,
        active_queues={},
        stats={},
        active={},
        now=at,
    )


def counts(store: FactStore, name: str, now: float, window: float = 600.0) -> dict[str, int]:
    return dict(zip(COUNTERS, store.tasks[name].ring.counts(window, now), strict=True))


# -- counting ---------------------------------------------------------------------------------


def test_every_task_event_type_is_counted() -> None:
    store = FactStore()
    store.apply_events(
        [
            sent("a"),
            received("a"),
            started("a"),
            succeeded("a", runtime=1.0),
            sent("b"),
            received("b"),
            started("b"),
            failed("b"),
            sent("c"),
            ev("task-retried", uuid="c", timestamp=T0, hostname=HOST),
            sent("d"),
            ev("task-revoked", uuid="d", timestamp=T0, terminated=False),
            ev("task-rejected", uuid="e", name="app.add", timestamp=T0, requeue=False),
        ],
        T0,
    )
    expected = {c: 0 for c in COUNTERS} | {
        "sent": 4,
        "received": 2,
        "started": 2,
        "succeeded": 1,
        "failed": 1,
        "retried": 1,
        "revoked": 1,
        "rejected": 1,
    }
    assert counts(store, "app.add", T0) == expected
    assert store.tasks["app.add"].totals == [expected[c] for c in COUNTERS]
    assert store.events_by_type["task-sent"] == 4
    assert store.events_by_type["task-rejected"] == 1
    assert store.inflight == {}  # every task finished one way or another
    assert store.last_event_at == T0


def test_unknown_event_type_counted_as_other() -> None:
    store = FactStore()
    store.apply_events([ev("task-custom", uuid="x"), ev("worker-something", hostname=HOST)], T0)
    assert store.events_by_type["other"] == 2
    assert store.drops.malformed == 0
    assert store.tasks == {}
    assert store.workers == {}


def test_counts_within_window_with_fake_clock() -> None:
    clock = FakeClock(T0)
    store = FactStore(bucket=10.0, retention=600.0)
    for i in range(30):  # one failure every 10 s for 5 minutes
        now = clock.now()
        store.apply_events([sent(f"u{i}", ts=now), failed(f"u{i}", ts=now)], now)
        clock.advance(10)
    now = clock.now() - 10  # the time of the last event
    # a bucket counts when it overlaps (now - window, now]: exact to one bucket width
    assert counts(store, "app.add", now, window=60.0)["failed"] == 7
    assert counts(store, "app.add", now, window=50.0)["failed"] == 6
    assert counts(store, "app.add", now, window=300.0)["failed"] == 30
    assert counts(store, "app.add", now, window=600.0)["failed"] == 30
    later = now + 120
    assert counts(store, "app.add", later, window=60.0)["failed"] == 0
    assert counts(store, "app.add", later, window=300.0)["failed"] == 19


def test_finishing_event_for_unknown_task_is_counted_as_dropped() -> None:
    store = FactStore()
    store.apply_events([started("ghost"), succeeded("ghost"), failed("ghost2")], T0)
    assert store.drops.unknown_task == 3
    assert store.drops.malformed == 0
    assert store.tasks == {}


# -- latency ----------------------------------------------------------------------------------


def quantile(store: FactStore, name: str, measure: int, now: float = T0 + 100) -> float | None:
    return store.tasks[name].ring.sketch(measure, 600.0, now).quantile(0.5)


@pytest.mark.parametrize(
    ("events", "queue_wait", "runtime", "total"),
    [
        # sent -> received -> started -> succeeded(runtime): wait from sent, runtime as reported
        (
            [
                sent("u", ts=T0),
                received("u", ts=T0 + 1),
                started("u", ts=T0 + 3),
                succeeded("u", ts=T0 + 8, runtime=4.5),
            ],
            3.0,
            4.5,
            8.0,
        ),
        # no task-sent (the default: task_send_sent_event off): wait from received
        (
            [received("u", ts=T0 + 1), started("u", ts=T0 + 3), succeeded("u", ts=T0 + 8)],
            2.0,
            5.0,  # no runtime field: finished - started
            7.0,
        ),
        # the received event comes after sent: it must not move the start of the wait
        (
            [
                sent("u", ts=T0),
                received("u", ts=T0 + 2),
                started("u", ts=T0 + 2.5),
                failed("u", ts=T0 + 4),
            ],
            2.5,
            1.5,
            4.0,
        ),
        # never started (e.g. failed on receipt): no wait or runtime, total from received
        ([received("u", ts=T0), failed("u", ts=T0 + 6)], None, None, 6.0),
        # clock skew between producer and worker: a negative wait is recorded as zero
        (
            [sent("u", ts=T0 + 5), started("u", ts=T0 + 3), succeeded("u", ts=T0 + 4, runtime=1)],
            0.0,
            1.0,
            0.0,
        ),
    ],
)
def test_latency_from_event_sequence(
    events: list[dict[str, Any]], queue_wait: float | None, runtime: float | None, total: float
) -> None:
    store = FactStore()
    for event in events:  # one at a time, as they'd arrive
        store.apply_event(event, T0 + 10)
    for measure, want in ((QUEUE_WAIT, queue_wait), (RUNTIME, runtime), (TOTAL, total)):
        got = quantile(store, "app.add", measure)
        if want is None:
            assert got is None, measure
        else:
            assert got == pytest.approx(want, rel=0.01, abs=1e-9), measure


def test_latency_histograms_for_metrics() -> None:
    store = FactStore()
    store.apply_events(
        [
            received("u", ts=T0),
            started("u", ts=T0 + 0.2),
            succeeded("u", ts=T0 + 1, runtime=0.3),
            received("v", ts=T0),
            started("v", ts=T0 + 5000),
            succeeded("v", ts=T0 + 5001),
        ],
        T0,
    )
    [metrics] = [m for (name, _, _), m in store.task_metrics.items() if name == "app.add"]
    runtime_hist, wait_hist = metrics.histograms
    assert runtime_hist[HISTOGRAM_BOUNDS.index(0.5)] == 1  # 0.3 s falls in the le=0.5 bucket
    assert runtime_hist[HISTOGRAM_BOUNDS.index(1)] == 1  # 1 s in le=1
    assert runtime_hist[-1] == pytest.approx(1.3)  # the sum
    assert wait_hist[HISTOGRAM_BOUNDS.index(0.25)] == 1
    assert wait_hist[len(HISTOGRAM_BOUNDS)] == 1  # 5000 s: only +Inf
    assert wait_hist[-1] == pytest.approx(5000.2)


# -- workers ----------------------------------------------------------------------------------

OFFLINE = ev("worker-offline", hostname=HOST, timestamp=T0)
ONLINE = ev("worker-online", hostname=HOST, timestamp=T0, freq=2.0, sw_ident="py-celery")


@pytest.mark.parametrize(
    ("timeline", "at", "alive"),
    [
        # timeline: (seconds after T0, heartbeat/online/offline event or ("ping", ttl))
        ([(0, heartbeat())], 0, True),
        ([(0, heartbeat())], 3.99, True),
        ([(0, heartbeat())], 4.0, False),  # Celery: alive while now < heartbeat + 2 x freq
        ([(0, heartbeat(freq=5))], 9.9, True),
        ([(0, heartbeat(freq=5))], 10.0, False),
        ([(0, heartbeat(freq=None))], 3.9, True),  # no freq: Celery's default of 2 s
        ([(0, heartbeat(freq=None))], 4.0, False),
        ([(0, heartbeat()), (3, heartbeat())], 6.9, True),
        ([(0, heartbeat()), (3, heartbeat())], 7.0, False),
        ([(0, ONLINE)], 3.0, True),
        ([(0, heartbeat()), (1, OFFLINE)], 1.5, False),  # offline: dead at once
        ([(0, heartbeat()), (1, OFFLINE), (2, heartbeat())], 3.0, True),
        ([(0, OFFLINE), (1, ONLINE)], 2.0, True),
        # a ping answered after the heartbeats expired keeps it alive for the ping's ttl
        ([(0, heartbeat()), (5, ("ping", 30.0))], 20.0, True),
        ([(0, heartbeat()), (5, ("ping", 30.0))], 34.9, True),
        ([(0, heartbeat()), (5, ("ping", 30.0))], 35.0, False),
        # a ping older than the heartbeat expiry does not extend it (SIGKILL after the ping)
        ([(0, heartbeat()), (3, ("ping", 30.0))], 5.0, False),
        ([(0, ("ping", 30.0)), (1, heartbeat())], 6.0, False),
        # only pings (events disabled)
        ([(0, ("ping", 30.0))], 29.9, True),
        ([(0, ("ping", 30.0))], 30.0, False),
        # a ping before the worker went offline does not revive it; one after does
        ([(0, heartbeat()), (0.5, ("ping", 30.0)), (1, OFFLINE)], 2.0, False),
        ([(0, heartbeat()), (1, OFFLINE), (6, ("ping", 30.0))], 10.0, True),
    ],
)
def test_worker_liveness(timeline: list[tuple[float, Any]], at: float, alive: bool) -> None:
    clock = FakeClock(T0)
    store = FactStore()
    for offset, what in timeline:
        clock.set(T0 + offset)
        if isinstance(what, tuple):
            ping(store, HOST, clock.now(), what[1])
        else:
            store.apply_event(what, clock.now())
    clock.set(T0 + at)
    assert store.workers[HOST].alive(clock.now()) is alive


def test_heartbeats_keep_a_worker_alive() -> None:
    clock = FakeClock(T0)
    store = FactStore()
    for _ in range(30):
        store.apply_event(heartbeat(), clock.now())
        assert store.workers[HOST].alive(clock.now())
        clock.advance(2.0)
    assert store.workers[HOST].alive(clock.now() + 1.9)


def test_worker_facts_from_heartbeats_and_task_events() -> None:
    store = FactStore()
    store.apply_event(ONLINE, T0)
    worker = store.workers[HOST]
    assert worker.sw_ident == "py-celery"
    assert worker.last_activity == T0
    store.apply_event(heartbeat(active=0, processed=0), T0 + 10)
    assert worker.last_activity == T0  # nothing happened
    store.apply_event(heartbeat(active=2, processed=0), T0 + 20)
    assert (worker.active, worker.last_activity) == (2, T0 + 20)
    store.apply_event(heartbeat(active=0, processed=5), T0 + 30)
    assert (worker.active, worker.processed, worker.last_activity) == (0, 5, T0 + 30)
    store.apply_events([received("u"), started("u", hostname=HOST)], T0 + 40)
    assert worker.last_task_started == T0 + 40
    assert worker.last_activity == T0 + 40
    store.apply_event(OFFLINE, T0 + 50)
    assert worker.active == 0


def test_prune_forgets_workers_gone_longer_than_retention() -> None:
    store = FactStore(worker_retention=60.0)
    store.apply_event(heartbeat("old@h"), T0)
    store.apply_event(heartbeat("new@h"), T0 + 50)
    store.prune(T0 + 55)
    assert set(store.workers) == {"old@h", "new@h"}
    store.prune(T0 + 61)
    assert set(store.workers) == {"new@h"}
    store.apply_event(heartbeat("new@h"), T0 + 100)
    store.prune(T0 + 101)
    assert set(store.workers) == {"new@h"}


# -- malformed events -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "task-sent",
        ["task-sent"],
        {"uuid": "x", "name": "app.add", "timestamp": T0},  # no type
        {"type": None},
        {"type": ["task-sent"]},
        ev("task-sent", name="app.add", timestamp=T0),  # no uuid
        ev("task-received", name="app.add", timestamp=T0),  # no uuid
        ev("task-sent", uuid=None, name="app.add", timestamp=T0),
        ev("task-sent", uuid=123, name="app.add", timestamp=T0),
        ev("task-sent", uuid=["a"], name="app.add", timestamp=T0),
        ev("task-sent", uuid="x", name="app.add"),  # no timestamp
        ev("task-sent", uuid="x", name="app.add", timestamp="yesterday"),
        ev("task-sent", uuid="x", name="app.add", timestamp=None),
        ev("task-sent", uuid="x", name=None, timestamp=T0),
        ev("task-sent", uuid="x", name=42, timestamp=T0),
        ev("task-sent", uuid="x", timestamp=T0),  # no name
        ev("task-started", uuid={"a": 1}, timestamp=T0, hostname="w9@h"),
        ev("task-succeeded", uuid="known", timestamp=T0, runtime="slow"),
        ev("task-failed", uuid="known", timestamp="late"),
        ev("worker-heartbeat", freq=2.0),  # no hostname
        ev("worker-heartbeat", hostname=None, freq=2.0),
        ev("worker-heartbeat", hostname=7, freq=2.0),
        ev("worker-heartbeat", hostname="w9@h", freq="often"),
        ev("worker-heartbeat", hostname="w9@h", freq=2.0, active="many"),
        ev("worker-online", hostname="w9@h", processed=[1]),
        ev("worker-offline", hostname=["w9@h"]),
    ],
)
def test_malformed_event_is_counted_and_skipped(bad: Any) -> None:
    store = FactStore()
    store.apply_events([sent("known"), received("known"), started("known")], T0)
    store.apply_events([sent("a"), bad, received("b"), heartbeat("w1@h")], T0 + 1)

    assert store.drops.malformed == 1
    # the malformed event changed nothing...
    assert "w9@h" not in store.workers
    assert "known" in store.inflight
    assert set(store.inflight) == {"known", "a", "b"}
    add = counts(store, "app.add", T0 + 1)
    assert (add["succeeded"], add["failed"]) == (0, 0)
    assert set(store.tasks) == {"app.add"}
    # ...and the rest of its batch was applied
    assert add["sent"] == 2
    assert add["received"] == 2
    assert store.workers["w1@h"].alive(T0 + 1)


# -- caps -------------------------------------------------------------------------------------


def test_task_series_capped_by_max_task_names() -> None:
    store = FactStore(max_task_names=3)
    events = [sent(f"u{i}", name=f"app.t{i % 5}") for i in range(20)]
    store.apply_events(events, T0)
    assert set(store.tasks) == {"app.t0", "app.t1", "app.t2"}
    assert store.drops.task_names == 8  # 4 events each for app.t3 and app.t4
    assert counts(store, "app.t0", T0)["sent"] == 4  # known series keep counting
    assert store.drops.as_dict()["task_series_cap"] == 8
    assert len(store.inflight) == 12  # the dropped ones are not tracked either


def test_inflight_capped_with_oldest_evicted() -> None:
    store = FactStore(max_inflight=10)
    store.apply_events([sent(f"u{i}") for i in range(25)], T0)
    assert len(store.inflight) == 10
    assert store.drops.inflight == 15
    assert list(store.inflight) == [f"u{i}" for i in range(15, 25)]
    store.apply_events([succeeded("u0"), succeeded("u24")], T0 + 1)
    assert store.drops.unknown_task == 1
    assert counts(store, "app.add", T0 + 1)["succeeded"] == 1
    assert store.drops.as_dict()["inflight_cap"] == 15


def test_received_after_sent_does_not_take_a_second_slot() -> None:
    store = FactStore(max_inflight=2)
    store.apply_events([sent("a"), sent("b"), received("a"), received("b")], T0)
    assert store.drops.inflight == 0
    assert set(store.inflight) == {"a", "b"}


def test_workers_capped() -> None:
    store = FactStore(max_workers=2)
    store.apply_events([heartbeat(f"w{i}@h") for i in range(5)], T0)
    ping(store, "w9@h", T0, 30.0)
    assert set(store.workers) == {"w0@h", "w1@h"}
    assert store.drops.workers == 4


def test_queues_capped() -> None:
    store = FactStore(max_queues=2)
    store.set_queue_depths({"a": (1, 1), "b": (2, None), "c": (3, 0)}, {}, T0)
    assert set(store.queues) == {"a", "b"}
    assert store.drops.queues == 1
    store.set_queue_depths({"a": (5, 1)}, {"b": "timeout"}, T0 + 1)
    assert (store.queues["a"].depth, store.queues["b"].depth) == (5, None)
    assert store.queues["b"].error == "timeout"


def test_memory_stays_bounded_whatever_the_traffic() -> None:
    clock = FakeClock(T0)
    store = FactStore(bucket=10.0, retention=60.0, max_task_names=5, max_inflight=100)
    most_buckets = 0
    for i in range(20_000):
        name = f"app.t{i % 7}"
        batch = [sent(f"u{i}", name=name, ts=clock.now()), received(f"u{i}", name=name)]
        if i % 3:  # a third of the tasks never finish: lost events
            batch += [started(f"u{i}"), succeeded(f"u{i}", runtime=0.1)]
        store.apply_events(batch, clock.now())
        most_buckets = max(most_buckets, *(len(s.ring.buckets) for s in store.tasks.values()))
        clock.advance(0.5)
    assert most_buckets <= 60.0 / 10.0 + 2
    assert most_buckets >= 6  # the rings were full
    assert len(store.tasks) == 5
    assert len(store.inflight) <= 100
    assert store.drops.task_names > 0
    assert store.drops.inflight > 0
    store.prune(clock.now() + 3600)
    assert all(len(s.ring.buckets) == 0 for s in store.tasks.values())


# -- batches ----------------------------------------------------------------------------------


def test_a_batch_is_the_same_as_its_events_one_by_one() -> None:
    events = [
        sent("a", ts=T0),
        received("a", ts=T0 + 1),
        started("a", ts=T0 + 2),
        succeeded("a", ts=T0 + 3, runtime=1.0),
        sent("b", name="app.mul", ts=T0),
        received("b", name="app.mul", ts=T0 + 1),
        started("b", ts=T0 + 2),
        failed("b", ts=T0 + 2.5),
        heartbeat(active=1),
    ]
    one_by_one, batched = FactStore(), FactStore()
    for event in events:
        one_by_one.apply_event(event, T0 + 5)
    batched.apply_events(events, T0 + 5)
    for store in (one_by_one, batched):
        assert counts(store, "app.add", T0 + 5)["succeeded"] == 1
        assert counts(store, "app.mul", T0 + 5)["failed"] == 1
    assert one_by_one.events_by_type == batched.events_by_type
    for name in ("app.add", "app.mul"):
        a, b = one_by_one.tasks[name], batched.tasks[name]
        assert a.totals == b.totals
    assert one_by_one.task_metrics.keys() == batched.task_metrics.keys()
    for key, a_metrics in one_by_one.task_metrics.items():
        b_metrics = batched.task_metrics[key]
        assert a_metrics.totals == b_metrics.totals
        assert a_metrics.histograms == b_metrics.histograms


class FakeMessage:
    content_type = "application/json"
    headers: dict[str, Any] = {}

    def __init__(self, body: Any) -> None:
        self.body = orjson.dumps(body)


def test_celery_list_body_is_split_into_events() -> None:
    """Celery groups task events and publishes the group as one message with a list body."""
    from celery import Celery

    from sentinel.collectors.events import EventCollector

    store = FactStore()
    clock = FakeClock(T0 + 5)
    app = Celery("test", broker="memory://", set_as_current=False)
    collector = EventCollector(app, store, clock)
    collector._on_message(FakeMessage(heartbeat()))  # a worker event: a single dict
    collector._on_message(
        FakeMessage(
            [
                sent("a", ts=T0),
                received("a", ts=T0 + 1),
                started("a", ts=T0 + 2),
                succeeded("a", ts=T0 + 3, runtime=1.0),
                "junk",
                {"no": "type"},
            ]
        )
    )
    assert counts(store, "app.add", T0 + 5)["succeeded"] == 1
    assert store.events_by_type["task-started"] == 1
    assert store.drops.malformed == 2
    assert store.workers[HOST].alive(T0 + 5)
    assert store.last_event_at == T0 + 5


def test_window_budget_forgets_the_oldest_buckets_first() -> None:
    store = FactStore(bucket=10.0, retention=600.0, max_window_bytes=60_000)
    now = T0
    for step in range(60):  # 10 minutes, 20 names busy in every bucket
        batch = []
        for i in range(20):
            u = f"u{step}-{i}"
            batch += [sent(u, name=f"app.t{i}", ts=now), started(u, ts=now + 0.1)]
            batch += [succeeded(u, runtime=0.01 * (1 + step % 7 + i))]
        store.apply_events(batch, now)
        store.prune(now)
        assert store.window_bytes <= 60_000
        now += 10.0
    assert store.drops.buckets > 0
    assert store.drops.as_dict()["window_budget"] == store.drops.buckets
    rings = [s.ring for s in store.tasks.values()]
    # every series lost the same oldest buckets and kept the newest one
    assert len({r.starts[0] for r in rings}) == 1
    assert all(r.starts[-1] == now - 10.0 for r in rings)
    assert counts(store, "app.t0", now, window=10.0)["succeeded"] == 1
    unbounded = FactStore(bucket=10.0, retention=600.0)
    unbounded.prune(now)
    assert unbounded.window_bytes == 0 and unbounded.drops.buckets == 0


def test_a_stream_gap_gives_live_workers_time_to_reconnect() -> None:
    from sentinel.facts.workers import RECONNECT_GRACE

    store = FactStore()
    store.apply_event(heartbeat("w@h", active=0, processed=0), 100.0)
    # The broker (and with it the event stream) is down from 101 to 160.
    store.stream_restored(lost_at=101.0, now=160.0)
    worker = store.workers["w@h"]
    assert worker.alive(160.0 + RECONNECT_GRACE)  # still within its grace
    assert not worker.alive(160.0 + RECONNECT_GRACE + 4.0)  # never came back: dead
    store.apply_event({"type": "worker-offline", "hostname": "w@h", "timestamp": 2.0}, 161.0)
    assert not worker.alive(162.0)  # an explicit goodbye is not overridden by the grace


def test_a_worker_already_dead_when_the_stream_dropped_gets_no_grace() -> None:
    store = FactStore()
    store.apply_event(heartbeat("w@h", active=0, processed=0), 100.0)
    store.stream_restored(lost_at=110.0, now=120.0)
    assert not store.workers["w@h"].alive(121.0)
