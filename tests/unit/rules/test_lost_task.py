from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.lost_task import LostTaskRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, heartbeat, run, task

RULE = LostTaskRule(name="Lost", kind="lost_task", tasks=("*",), window=600.0)


def running_on(store: FactStore, worker: str, uuid: str, name: str, at: float) -> None:
    store.apply_events(
        [
            heartbeat(worker, active=1, processed=0),
            task("received", uuid, at, name=name, hostname=worker),
            task("started", uuid, at, hostname=worker),
        ],
        at,
    )


def test_heartbeat_expiry_mid_task_loses_it() -> None:
    store = FactStore()
    running_on(store, "w1@h", "a", "app.charge", T0)
    running_on(store, "w2@h", "b", "app.charge", T0)
    store.apply_event(heartbeat("w2@h", active=1, processed=0), T0 + 4)
    assert run(RULE, store, T0 + 3) == []
    # w1 expires at T0 + 4 (2 x freq); w2 beat at T0 + 4 and lives until T0 + 8.
    [sample] = run(RULE, store, T0 + 5)
    assert (sample.labels, sample.value, sample.active) == ({"task": "app.charge"}, 1.0, True)
    assert sample.detail == {"task_ids": "a on w1@h"}
    assert by_label(run(RULE, store, T0 + 9), "task")["app.charge"].value == 2.0


def test_worker_offline_while_running_loses_it_and_a_finished_task_is_not_lost() -> None:
    store = FactStore()
    running_on(store, "w1@h", "a", "app.charge", T0)
    running_on(store, "w1@h", "done", "app.charge", T0)
    store.apply_event(task("succeeded", "done", T0 + 1, runtime=1.0), T0 + 1)
    store.apply_event({"type": "worker-offline", "hostname": "w1@h", "timestamp": T0 + 2}, T0 + 2)
    [sample] = run(RULE, store, T0 + 2)
    assert sample.value == 1.0 and sample.detail == {"task_ids": "a on w1@h"}


def test_a_restart_under_the_same_name_loses_what_the_old_process_ran() -> None:
    store = FactStore()
    running_on(store, "w1@h", "a", "app.charge", T0)
    store.apply_event({"type": "worker-online", "hostname": "w1@h", "timestamp": T0 + 1}, T0 + 1)
    assert run(RULE, store, T0 + 1)[0].value == 1.0


def test_a_redelivered_task_that_finishes_elsewhere_clears_it() -> None:
    store = FactStore()
    running_on(store, "w1@h", "a", "app.charge", T0)
    assert run(RULE, store, T0 + 10)[0].active is True
    running_on(store, "w2@h", "a", "app.charge", T0 + 11)  # acks_late: the broker redelivers
    assert run(RULE, store, T0 + 12)[0].value == 1.0  # still lost until it finishes
    store.apply_event(task("succeeded", "a", T0 + 13, runtime=1.0), T0 + 13)
    assert run(RULE, store, T0 + 13) == []


def test_lost_tasks_leave_the_window() -> None:
    store = FactStore()
    store.fact_retention = 600.0
    running_on(store, "w1@h", "a", "app.charge", T0)
    assert len(run(RULE, store, T0 + 10)) == 1
    assert run(RULE, store, T0 + 700) == []
    store.prune(T0 + 700)
    assert store.running.lost == {}


def test_the_lost_map_is_capped_and_counts_what_it_dropped() -> None:
    store = FactStore(max_lost=2)
    for i in range(3):
        running_on(store, "w1@h", f"t{i}", "app.charge", T0)
    run(RULE, store, T0 + 10)
    assert list(store.running.lost) == ["t1", "t2"]
    assert store.drops.as_dict()["lost_cap"] == 1


def test_the_running_map_is_capped_and_counts_what_it_dropped() -> None:
    store = FactStore(max_running=2)
    for i in range(3):
        running_on(store, "w1@h", f"t{i}", "app.charge", T0 + i)
    assert list(store.running.running) == ["t1", "t2"]
    assert store.drops.as_dict()["running_cap"] == 1
    assert list(store.running.by_worker["w1@h"]) == ["t1", "t2"]
