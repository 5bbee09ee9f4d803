from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.queue_unconsumed import QueueUnconsumedRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, heartbeat, run

RULE = QueueUnconsumedRule(name="Unconsumed", kind="queue_unconsumed")


def cluster(worker_queues: list[str] | None) -> FactStore:
    """One live worker (heartbeat at T0) consuming worker_queues (None: not asked yet)."""
    store = FactStore()
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0)
    store.set_inspect({"w1@h"}, T0, 30.0, {"w1@h": worker_queues or []}, {}, {}, T0)
    if worker_queues is None:
        store.workers["w1@h"].queues = ()
    store.probe_ok("inspect", T0)
    return store


def test_redis_messages_on_a_queue_no_live_worker_lists() -> None:
    store = cluster(["new"])
    store.set_queue_depths({"old": (7, None), "new": (3, None), "empty": (0, None)}, {}, T0)
    samples = by_label(run(RULE, store, T0 + 1), "queue")
    assert (samples["old"].value, samples["old"].active) == (7.0, True)
    assert samples["new"].active is False  # consumed
    assert samples["empty"].active is False  # nothing waits


def test_rabbitmq_consumer_count_is_the_answer() -> None:
    store = FactStore()  # no inspect needed: the broker counts the consumers
    store.set_queue_depths({"a": (5, 0), "b": (5, 2)}, {}, T0)
    samples = by_label(run(RULE, store, T0), "queue")
    assert samples["a"].active is True and samples["b"].active is False


def test_a_dead_worker_does_not_consume() -> None:
    store = cluster(["q"])
    store.set_queue_depths({"q": (1, None)}, {}, T0)
    assert run(RULE, store, T0 + 1)[0].active is False
    # heartbeat at T0 with freq 2 expires at T0 + 4; the ping's ttl covers it until T0 + 30
    assert run(RULE, store, T0 + 31)[0].active is True


def test_no_verdict_while_sentinel_cannot_tell() -> None:
    store = cluster(None)  # alive, but its queues are not known yet
    store.set_queue_depths({"q": (1, None)}, {}, T0)
    assert run(RULE, store, T0 + 1)[0].active is None
    blind = FactStore()  # no inspect round has worked
    blind.set_queue_depths({"q": (1, None)}, {"r": "timeout"}, T0)
    assert [s.active for s in run(RULE, blind, T0)] == [None, None]


def test_a_queue_seen_holding_messages_stays_measured() -> None:
    store = cluster(["new"])
    store.set_queue_depths({"old": (4, None)}, {}, T0)
    assert "old" in store.known_queues(("new",))
    store.set_queue_depths({"old": (0, None)}, {}, T0 + 1)
    assert "old" not in store.known_queues(("new",))
