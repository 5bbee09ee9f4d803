from __future__ import annotations

from typing import Any

from sentinel.facts.store import FactStore
from sentinel.rules.worker_flapping import WorkerFlappingRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, heartbeat, run

RULE = WorkerFlappingRule(name="Flapping", kind="worker_flapping", restarts=3, window=60.0)


def event(kind: str, worker: str = "w1@h", **fields: Any) -> dict[str, Any]:
    return {"type": f"worker-{kind}", "hostname": worker, "timestamp": T0, **fields}


def test_offline_online_three_times_in_the_window() -> None:
    store = FactStore()
    store.apply_event(event("online"), T0)  # first sight: not a restart
    for i in range(3):
        store.apply_event(event("offline"), T0 + 10 * i + 5)
        store.apply_event(event("online"), T0 + 10 * i + 10)
    [sample] = run(RULE, store, T0 + 31)
    assert sample.labels == {"worker": "w1@h"}
    assert (sample.value, sample.threshold, sample.active) == (3.0, 3.0, True)
    assert run(RULE, store, T0 + 75)[0].active is False  # the first two left the window
    store.prune(T0 + 1000)
    assert run(RULE, store, T0 + 1000) == []


def test_sigkill_restarts_count_by_online_or_by_heartbeats_after_expiry() -> None:
    store = FactStore()
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0)
    # Killed, restarted faster than its heartbeats expire: a worker-online all the same.
    store.apply_event(event("online"), T0 + 1)
    # Hung 20 s (heartbeats expired at T0 + 5), then beating again.
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0 + 21)
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0 + 23)  # alive: no count
    assert run(RULE, store, T0 + 24)[0].value == 2.0


def test_a_steady_worker_and_a_new_one_do_not_flap() -> None:
    store = FactStore()
    for t in range(0, 60, 2):
        store.apply_event(heartbeat("w1@h", active=0, processed=0), T0 + t)
    store.apply_event(event("online", "w2@h"), T0 + 30)
    assert by_label(run(RULE, store, T0 + 60), "worker") == {}


def test_restarts_are_capped_per_worker_and_by_name() -> None:
    store = FactStore(max_workers=1)
    for i in range(100):
        store.restarts.came_back("w1@h", T0 + i)
    store.restarts.came_back("w2@h", T0)
    assert len(store.restarts.times["w1@h"]) == 64
    assert store.drops.as_dict()["restart_cap"] == 1
