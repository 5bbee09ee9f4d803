from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.events_missing import EventsMissingRule
from tests.helpers import T0
from tests.unit.rules.kit import heartbeat, run, task

RULE = EventsMissingRule(name="Blind", kind="events_missing", window=60.0, min_count=10)


def test_a_worker_that_answers_ping_but_sends_no_events() -> None:
    store = FactStore()
    store.set_inspect({"w1@h"}, T0, 35.0, {}, {}, {}, T0)
    [sample] = run(RULE, store, T0 + 1)
    assert (sample.labels, sample.value, sample.active) == ({"worker": "w1@h"}, 1.0, True)
    assert run(RULE, store, T0 + 40) == []  # not alive at all any more: NoLiveWorkers' case


def work(store: FactStore, seconds: int, per_beat: int, seen_per_beat: int) -> None:
    """A worker starting per_beat tasks per 2 s heartbeat, seen_per_beat of them by sentinel."""
    processed = 0
    for t in range(0, seconds, 2):
        for i in range(seen_per_beat):
            uuid = f"t{t}-{i}"
            store.apply_events(
                [
                    task("received", uuid, T0 + t, name="x", hostname="w1@h"),
                    task("started", uuid, T0 + t, hostname="w1@h"),
                ],
                T0 + t,
            )
        processed += per_beat
        store.apply_event(heartbeat("w1@h", active=1, processed=processed), T0 + t)


def test_all_task_events_arrive() -> None:
    store = FactStore()
    work(store, 60, per_beat=5, seen_per_beat=5)
    [sample] = run(RULE, store, T0 + 59)
    assert sample.value == 0.0 and sample.active is False


def test_most_task_events_lost() -> None:
    store = FactStore()
    work(store, 60, per_beat=5, seen_per_beat=1)
    [sample] = run(RULE, store, T0 + 59)
    assert sample.active is True and 0.75 <= sample.value <= 0.85


def test_too_little_work_is_no_verdict_and_none_is_not_blind() -> None:
    store = FactStore()
    work(store, 10, per_beat=1, seen_per_beat=0)
    assert run(RULE, store, T0 + 9)[0].active is None  # 4 tasks < min_count
    idle = FactStore()
    work(idle, 60, per_beat=0, seen_per_beat=0)
    assert run(RULE, idle, T0 + 59)[0].active is False


def test_a_restarted_worker_starts_counting_again() -> None:
    store = FactStore()
    work(store, 30, per_beat=5, seen_per_beat=0)
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0 + 31)  # processed fell
    assert len(store.coverage.workers["w1@h"].checkpoints) == 1


def test_work_between_two_close_heartbeats_counts_from_the_first() -> None:
    store = FactStore()
    store.apply_event(heartbeat("w1@h", active=0, processed=0), T0)
    store.apply_event(heartbeat("w1@h", active=0, processed=30), T0 + 1)  # within one STEP
    [sample] = run(RULE, store, T0 + 1)
    assert (sample.value, sample.active) == (1.0, True)
