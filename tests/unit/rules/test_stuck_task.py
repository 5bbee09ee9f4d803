from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.stuck_task import StuckTaskRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, heartbeat, run, task

RULE = StuckTaskRule(name="Stuck", kind="stuck_task", tasks=("app.*",), running_for=30.0)


def started(store: FactStore, uuid: str, name: str, at: float, worker: str = "w1@h") -> None:
    store.apply_events(
        [
            task("received", uuid, at, name=name, hostname=worker),
            task("started", uuid, at, hostname=worker),
        ],
        at,
    )


def alive(store: FactStore, until: float, worker: str = "w1@h") -> None:
    """Heartbeats every 2 s up to `until`."""
    t = T0
    while t <= until:
        store.apply_event(heartbeat(worker, active=1, processed=0), t)
        t += 2.0


def test_fires_past_running_for_with_the_oldest_age_and_the_ids() -> None:
    store = FactStore()
    alive(store, T0 + 100)
    started(store, "a", "app.report", T0)
    started(store, "b", "app.report", T0 + 10)
    started(store, "c", "app.report", T0 + 90)  # not stuck yet
    started(store, "d", "other.task", T0)  # not matched
    assert run(RULE, store, T0 + 29) == []
    [sample] = run(RULE, store, T0 + 100)
    assert sample.labels == {"task": "app.report"}
    assert (sample.value, sample.threshold, sample.active) == (100.0, 30.0, True)
    assert sample.detail == {"task_ids": "a on w1@h, b on w1@h"}


def test_finishing_clears_it() -> None:
    store = FactStore()
    alive(store, T0 + 60)
    started(store, "a", "app.report", T0)
    assert len(run(RULE, store, T0 + 40)) == 1
    store.apply_event(task("succeeded", "a", T0 + 50, runtime=50.0), T0 + 50)
    assert run(RULE, store, T0 + 60) == []


def test_an_inspect_round_that_no_longer_lists_it_clears_a_lost_success() -> None:
    store = FactStore()
    alive(store, T0 + 60)
    started(store, "a", "app.report", T0)
    started(store, "b", "app.report", T0 + 1)
    # The task-succeeded of `a` never arrived; the worker's active list has only `b`.
    active = {"w1@h": [{"id": "b", "name": "app.report", "time_start": T0 + 1}]}
    store.set_inspect({"w1@h"}, T0 + 45, 30.0, {}, {}, {"w1@h": 1}, T0 + 45, active)
    [sample] = run(RULE, store, T0 + 50)
    assert sample.detail == {"task_ids": "b on w1@h"} and sample.value == 49.0
    assert store.running.confirmed_finished == 1


def test_a_task_started_after_the_round_was_asked_is_kept() -> None:
    store = FactStore()
    alive(store, T0 + 60)
    started(store, "late", "app.report", T0 + 46)
    store.set_inspect({"w1@h"}, T0 + 45, 30.0, {}, {}, {}, T0 + 47, {"w1@h": []})
    assert "late" in store.running.running


def test_inspect_adds_a_task_whose_start_was_missed() -> None:
    store = FactStore()
    alive(store, T0 + 60)
    started(store, "seen", "app.report", T0 + 20)
    active = {
        "w1@h": [
            {"id": "seen", "name": "app.report", "time_start": T0 + 20},
            {"id": "missed", "name": "app.report", "time_start": T0 + 5},
        ]
    }
    store.set_inspect({"w1@h"}, T0 + 50, 30.0, {}, {}, {}, T0 + 50, active)
    [sample] = run(RULE, store, T0 + 55)
    assert sample.value == 50.0  # the missed one is the oldest
    assert sample.detail == {"task_ids": "missed on w1@h, seen on w1@h"}


def test_a_dead_workers_task_is_lost_not_stuck() -> None:
    store = FactStore()
    alive(store, T0 + 10)  # last heartbeat T0 + 10: expires at T0 + 14
    started(store, "a", "app.report", T0)
    assert run(RULE, store, T0 + 13) == []  # not stuck yet, and alive
    assert by_label(run(RULE, store, T0 + 40), "task") == {}
    assert list(store.running.lost) == ["a"]


def test_more_than_five_are_summarised() -> None:
    store = FactStore()
    alive(store, T0 + 100)
    for i in range(7):
        started(store, f"t{i}", "app.report", T0 + i)
    [sample] = run(RULE, store, T0 + 100)
    assert sample.detail is not None
    assert sample.detail["task_ids"].endswith("t4 on w1@h and 2 more")
