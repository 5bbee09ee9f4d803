from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.queue_stalled import QueueStalledRule
from tests.helpers import T0
from tests.unit.rules.kit import heartbeat, run, task

RULE = QueueStalledRule(name="Stalled", kind="queue_stalled", stalled_for=60.0)


def cluster(until: float, queues: tuple[str, ...] = ("q",)) -> FactStore:
    """One worker consuming `queues`, heartbeating every 2 s until `until`."""
    store = FactStore()
    t = T0
    while t <= until:
        store.apply_event(heartbeat("w1@h", active=1, processed=0), t)
        t += 2.0
    store.set_inspect({"w1@h"}, T0, 30.0, {"w1@h": list(queues)}, {}, {}, T0)
    store.probe_ok("inspect", T0)
    return store


def depth(store: FactStore, n: int, at: float, consumers: int | None = None) -> None:
    store.set_queue_depths({"q": (n, consumers)}, {}, at)


def test_waiting_with_a_live_consumer_and_nothing_taken() -> None:
    store = cluster(T0 + 200)
    for t in range(0, 100, 10):
        depth(store, 5, T0 + t)
    [sample] = run(RULE, store, T0 + 59)
    assert sample.active is False and sample.value == 59.0
    [sample] = run(RULE, store, T0 + 95)
    assert sample.active is True and sample.value == 95.0


def test_a_busy_queue_that_keeps_moving_is_not_stalled() -> None:
    store = cluster(T0 + 200)
    # Deep and growing, but the worker keeps receiving tasks from it.
    for i, t in enumerate(range(0, 200, 10)):
        depth(store, 1000 + 10 * i, T0 + t)
        store.apply_event(task("received", f"t{i}", T0 + t, name="x", hostname="w1@h"), T0 + t)
    assert run(RULE, store, T0 + 199)[0].active is False


def test_a_depth_that_goes_down_is_taken_from() -> None:
    store = cluster(T0 + 300)
    for i, t in enumerate(range(0, 200, 10)):
        depth(store, 1000 - i, T0 + t, consumers=2)
    assert run(RULE, store, T0 + 199)[0].active is False
    for t in range(200, 300, 10):
        depth(store, 980, T0 + t, consumers=2)
    [sample] = run(RULE, store, T0 + 295)
    assert sample.active is True and sample.value == 95.0  # 981 -> 980 at T0 + 200, then still


def test_an_unconsumed_queue_is_not_stalled_and_a_new_consumer_gets_its_time() -> None:
    store = cluster(T0 + 300, queues=("other",))
    for t in range(0, 100, 10):
        depth(store, 5, T0 + t, consumers=0)
    assert run(RULE, store, T0 + 95)[0].active is False  # queue_unconsumed's case
    store.set_inspect({"w1@h"}, T0 + 100, 30.0, {"w1@h": ["other", "q"]}, {}, {}, T0 + 100)
    for t in range(100, 200, 10):
        depth(store, 5, T0 + t, consumers=1)
    [sample] = run(RULE, store, T0 + 150)
    assert sample.active is False and sample.value == 50.0  # served since T0 + 100
    assert run(RULE, store, T0 + 190)[0].active is True


def test_emptied_starts_again() -> None:
    store = cluster(T0 + 300)
    depth(store, 5, T0, consumers=1)
    depth(store, 0, T0 + 50, consumers=1)
    depth(store, 5, T0 + 100, consumers=1)
    assert run(RULE, store, T0 + 130)[0].value == 30.0


def test_no_verdict_when_consumers_are_unknown() -> None:
    store = FactStore()
    depth(store, 5, T0, consumers=1)  # no inspect round yet: the broker's count is not enough
    assert run(RULE, store, T0 + 100)[0].active is None


def test_a_stopped_worker_is_dead_not_stalled() -> None:
    store = cluster(T0 + 10)  # SIGSTOPped at T0 + 10: no heartbeat, no ping answer since
    for t in range(0, 100, 10):
        depth(store, 5, T0 + t, consumers=1)  # RabbitMQ still counts its consumer
    assert run(RULE, store, T0 + 95)[0].active is False


def test_the_flows_are_capped() -> None:
    store = FactStore(max_queues=1)
    store.flows.measured("a", 1, True, T0)
    store.flows.measured("b", 1, True, T0)
    assert list(store.flows.flows) == ["a"]
    assert store.drops.as_dict()["queue_flow_cap"] == 1
