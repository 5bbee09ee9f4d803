"""The value history of per-series rules written from what changed (Rows.parts(), SeriesPart):
the same series, points, thresholds and drops as writing every sample of every tick (Rows.
samples()), over random traffic, series that appear, go idle and are forgotten, reloads, a
relabelled and a removed rule, a rule failing for a while, names forgotten and the series cap;
and only the changed samples are written, without making label sets for the others."""

from __future__ import annotations

import random
from typing import Any

import pytest

import sentinel.alerts.book as book_module
from sentinel.alerts.book import AlertBook, Labeler
from sentinel.alerts.values import Entry, Point, SeriesPart, ValueHistory
from sentinel.config import parse
from sentinel.facts.store import FactStore
from sentinel.facts.windows import FAILED, RECEIVED, RUNTIME, STARTED, SUCCEEDED
from sentinel.model import Labels
from tests.helpers import T0

RULES = """
limits: {bucket: 10s}
rules:
  - {name: FailAll, kind: failure_rate, tasks: ["*"], window: 1m, threshold: 20%, min_count: 3}
  - {name: NoLiveWorkers, kind: no_live_workers}
  - {name: FailA, kind: failure_rate, tasks: ["a.*"], window: 30s, threshold: 10%, min_count: 2,
     labels: {team: LABEL}}
  - {name: SlowAll, kind: task_latency, tasks: ["*"], measure: runtime, percentile: 90,
     threshold: 2s, window: 2m, min_count: 2}
  - {name: SlowB, kind: task_latency, tasks: ["b.*"], measure: runtime, percentile: 50,
     threshold: 1s, window: 1m, min_count: 1}
"""

NAMES = [f"{app}.t{i}" for app in "abc" for i in range(6)]
LATE = [f"{app}.late{i}" for app in "ab" for i in range(3)]  # names that appear mid-run


def rules(label: str = "ops", without: str | None = None) -> Any:
    """New rule objects (a reload); `label` relabels FailA, `without` removes a rule."""
    parsed = parse(RULES.replace("LABEL", label), env={}).rules
    return [r for r in parsed if r.name != without]


def traffic(store: FactStore, rng: random.Random, now: float, names: list[str]) -> None:
    with store.lock:
        for name in rng.sample(names, rng.randint(0, 4)):
            series = store.series(name)
            assert series is not None
            bad = rng.random() < 0.4
            for _ in range(rng.randint(1, 3)):
                for slot in (RECEIVED, STARTED, FAILED if bad else SUCCEEDED):
                    series.count(slot, now)
                series.observe(RUNTIME, rng.expovariate(0.5 if bad else 3.0), now)


def seen(h: ValueHistory) -> tuple[Any, ...]:
    """Everything a reader can see of a history, in its order."""
    return (
        [(s.rule, s.labels, s.threshold, s.points, s.latest) for s in h.series()],
        len(h),
        h.dropped,
    )


def has_gap(points: tuple[Point, ...], times: list[float]) -> bool:
    """Whether a series missed a tick between its first point and its last."""
    if not points:
        return False
    return times.index(points[-1].at) - times.index(points[0].at) + 1 > len(points)


class Failing:
    """Makes one rule's per-series evaluation raise while `on` (the book counts it failed)."""

    def __init__(self) -> None:
        self.rule: str | None = None
        self.original = book_module.per_series_evaluator

    def __call__(self, kind: str) -> Any:
        inner = self.original(kind)
        if inner is None:
            return None

        def evaluate(rule: Any, store: FactStore, now: float, series: Any) -> Any:
            if rule.name == self.rule:
                raise RuntimeError("broken for a while")
            return inner(rule, store, now, series)

        return evaluate


@pytest.mark.parametrize("seed", range(5))
def test_writing_what_changed_gives_what_writing_every_sample_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    failing = Failing()
    monkeypatch.setattr(book_module, "per_series_evaluator", failing)
    store = FactStore(bucket=10.0, retention=300.0)
    with store.lock:
        for name in NAMES:
            store.series(name)
    book = AlertBook(None)
    # A cap under the ~70 series so that some are past it, and places free up as series go.
    points, cap = 8, 45 + seed * 5
    full = ValueHistory(points, cap)  # every sample of every tick: the reference
    read_each = ValueHistory(points, cap)  # read every tick: carried points filled each time
    read_late = ValueHistory(points, cap)  # read now and then: long carries filled at once
    current = rules()
    names = list(NAMES)
    now = T0
    gaps = forgot = freed = False
    times: list[float] = []
    for step in range(150):
        now += rng.choice((3.0, 7.0, 15.0, 15.0, 31.0))
        if not 40 <= step % 70 < 55:  # quiet stretches: answers change only as buckets leave
            traffic(store, rng, now, names)
        if step == 20:
            names += LATE  # new series join every run mid-way
        if step == 30:
            current = rules()  # a reload: new rule objects, same label sets
        if step == 45:
            current = rules(label="dev")  # FailA's old label sets go idle and are forgotten
        if step == 60:
            current = rules(label="dev", without="SlowAll")  # removed: its series stop
        if step == 75:
            current = rules(label="dev")  # back, as a new run
        if 90 <= step < 94 or step == 97:
            failing.rule = "FailAll"  # no samples while it fails; a new run after
        else:
            failing.rule = None
        if step == 110:
            with store.lock:  # names forgotten: every run over them starts afresh
                for name in ("a.t1", "c.t2"):
                    del store.tasks[name]
                store.names_version += 1
            names = [n for n in names if n not in ("a.t1", "c.t2")]
        if step == 130:
            store.max_window_bytes = 1  # a budget drop: every series evaluated again
            store.prune(now)
            store.max_window_bytes = None
        if step % 10 == 0:
            store.prune(now)
        _, rows = book.tick(current, store, now)
        before = len(full)
        full.record(now, rows.samples())
        read_each.record_parts(now, rows.parts())
        read_late.record_parts(now, rows.parts())
        want = seen(full)
        assert seen(read_each) == want, f"step {step}"
        if step % 23 == 22:
            assert seen(read_late) == want, f"step {step}"
        # What the scenario is about: gaps in a series, label sets forgotten, and places under
        # the cap freed and taken again.
        times.append(now)
        gaps |= any(has_gap(s.points, times) for s in full.series())
        forgot |= step > 45 and not any(s.labels.get("team") == "ops" for s in full.series())
        freed |= before < cap and len(full) > before and step > 1
    assert seen(read_late) == seen(full)
    assert full.dropped > 0 and gaps and forgot and freed


def test_a_full_evaluation_book_records_the_same_either_way() -> None:
    """AlertBook(incremental=False): no SeriesPart, every sample written as before."""
    rng = random.Random(3)
    store = FactStore(bucket=10.0, retention=300.0)
    book = AlertBook(None, incremental=False)
    full, parts = ValueHistory(6, 40), ValueHistory(6, 40)
    now = T0
    for _ in range(30):
        now += 15.0
        traffic(store, rng, now, NAMES)
        _, rows = book.tick(rules(), store, now)
        assert not any(isinstance(p, SeriesPart) for p in rows.parts())
        full.record(now, rows.samples())
        parts.record_parts(now, rows.parts())
        assert seen(parts) == seen(full)


def one_rule_store() -> tuple[FactStore, Any]:
    store = FactStore(bucket=10.0, retention=300.0)
    with store.lock:
        for name in ("a.t0", "a.t1", "a.t2"):
            series = store.series(name)
            assert series is not None
            series.count(RECEIVED, T0)
            series.count(SUCCEEDED, T0)
    rule = parse(
        "rules:\n  - {name: F, kind: failure_rate, tasks: ['a.*'], window: 1m,"
        " threshold: 50%, min_count: 1}",
        env={},
    ).rules
    return store, rule


def fail_once(store: FactStore, name: str, at: float) -> None:
    with store.lock:
        series = store.series(name)
        assert series is not None
        series.count(RECEIVED, at)
        series.count(FAILED, at)


def test_only_changed_samples_are_written_and_the_others_carried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(10, 100)
    writes: list[int] = []
    original = ValueHistory._write

    def counting(self: ValueHistory, *args: Any) -> None:
        writes.append(1)
        original(self, *args)

    monkeypatch.setattr(ValueHistory, "_write", counting)
    for k in range(4):
        if k == 2:
            fail_once(store, "a.t1", T0 + 10 * k + 1)
        _, rows = book.tick(rule, store, T0 + 10 * k + 2)
        writes.clear()
        h.record_parts(T0 + 10 * k + 2, rows.parts())
        assert len(writes) == (3 if k == 0 else 1 if k == 2 else 0), k
    values = {s.labels["task"]: [p.value for p in s.points] for s in h.series()}
    assert values == {"a.t0": [0.0] * 4, "a.t1": [0.0, 0.0, 0.5, 0.5], "a.t2": [0.0] * 4}
    assert [p.at for p in h.series()[0].points] == [T0 + 2, T0 + 12, T0 + 22, T0 + 32]


def test_a_rule_that_fails_leaves_a_gap_and_its_series_go_on_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = Failing()
    monkeypatch.setattr(book_module, "per_series_evaluator", failing)
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(10, 100)
    for k in range(5):
        failing.rule = "F" if k == 2 else None
        if k == 2:
            fail_once(store, "a.t1", T0 + 10 * k + 1)  # something to evaluate (and fail on)
        _, rows = book.tick(rule, store, T0 + 10 * k + 2)
        h.record_parts(T0 + 10 * k + 2, rows.parts())
    assert book.rule_errors == 1
    for s in h.series():
        assert [p.at - T0 for p in s.points] == [2, 12, 32, 42]


def test_a_removed_rule_stops_being_carried_and_is_forgotten_after_a_lap() -> None:
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(4, 100)
    for k in range(9):
        _, rows = book.tick(rule if k < 2 else [], store, T0 + 10 * k + 2)
        h.record_parts(T0 + 10 * k + 2, rows.parts())
        if k == 3:  # still in the window: its two points, none carried past its removal
            assert [len(s.points) for s in h.series()] == [2, 2, 2]
            assert all(s.latest is not None and s.latest.at == T0 + 12 for s in h.series())
    assert len(h) == 0 and h.series() == []
    assert not h._runs  # nothing kept of the removed rule's run (its index of rings)


def test_a_tick_recorded_without_the_rules_part_is_a_gap_not_carried() -> None:
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(10, 100)
    _, rows = book.tick(rule, store, T0 + 2)
    h.record_parts(T0 + 2, rows.parts())
    h.record(T0 + 12, [])  # some tick the rule had no samples in
    _, rows = book.tick(rule, store, T0 + 22)  # the book's next tick: nothing changed
    h.record_parts(T0 + 22, rows.parts())
    for s in h.series():
        assert [p.at - T0 for p in s.points] == [2, 22]


def test_rows_read_after_the_book_ticked_again_are_written_in_full() -> None:
    """A SeriesPart whose samples moved on cannot tell what changed: its snapshot is written."""
    store, rule = one_rule_store()
    book, h, full = AlertBook(None), ValueHistory(10, 100), ValueHistory(10, 100)
    _, first = book.tick(rule, store, T0 + 2)
    h.record_parts(T0 + 2, first.parts())
    full.record(T0 + 2, first.samples())
    fail_once(store, "a.t0", T0 + 5)
    _, stale = book.tick(rule, store, T0 + 12)
    with store.lock:  # a.t0 changes again: had `stale` been taken as a tick, not this one's
        series = store.series("a.t0")
        assert series is not None
        for _ in range(2):
            series.count(RECEIVED, T0 + 15)
            series.count(SUCCEEDED, T0 + 15)
    _, rows = book.tick(rule, store, T0 + 22)  # the history had not yet seen `stale`'s tick
    for at, r in ((T0 + 12, stale), (T0 + 22, rows)):
        h.record_parts(at, r.parts())
        full.record(at, r.samples())
    assert seen(h) == seen(full)
    values = {s.labels["task"]: [p.value for p in s.points] for s in h.series()}
    assert values == {"a.t0": [0.0, 0.5, 0.25], "a.t1": [0.0] * 3, "a.t2": [0.0] * 3}


class Made(list[Labels]):
    """The label sets Labeler makes (for the value history: of samples it writes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        original = Labeler.__call__

        def counting(labeler: Labeler, extra: Any) -> Labels:
            labels = original(labeler, extra)
            self.append(labels)
            return labels

        monkeypatch.setattr(Labeler, "__call__", counting)


def test_a_book_tick_the_history_did_not_record_is_not_taken_as_unchanged() -> None:
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(10, 100)
    _, rows = book.tick(rule, store, T0 + 2)
    h.record_parts(T0 + 2, rows.parts())
    fail_once(store, "a.t0", T0 + 5)
    book.tick(rule, store, T0 + 12)  # its rows never recorded: a.t0 changed in it
    _, rows = book.tick(rule, store, T0 + 22)  # nothing changed since
    h.record_parts(T0 + 22, rows.parts())
    values = {s.labels["task"]: [p.value for p in s.points] for s in h.series()}
    assert values == {"a.t0": [0.0, 0.5], "a.t1": [0.0, 0.0], "a.t2": [0.0, 0.0]}


def test_samples_past_the_cap_are_dropped_without_making_their_label_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, rule = one_rule_store()
    book, h = AlertBook(None), ValueHistory(10, max_series=1)
    made = Made(monkeypatch)
    for k in range(4):
        if k == 2:
            fail_once(store, "a.t2", T0 + 10 * k + 1)  # past the cap: changed, still dropped
        _, rows = book.tick(rule, store, T0 + 10 * k + 2)
        made.clear()
        h.record_parts(T0 + 10 * k + 2, rows.parts())
        assert len(made) == (3 if k == 0 else 0), k
        assert h.dropped == 2 * (k + 1)  # as writing every sample counts them: each tick
    assert [s.labels["task"] for s in h.series()] == ["a.t0"]


def test_carried_samples_past_the_cap_take_freed_places_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A place freed under the cap (a series forgotten) goes to the first sample past it, even
    one carried unchanged: as writing every sample gives it."""
    store, rule = one_rule_store()
    with store.lock:
        series = store.series("b.t0")
        assert series is not None
        series.count(RECEIVED, T0)
    other = parse(
        "rules:\n  - {name: G, kind: failure_rate, tasks: ['b.*'], min_count: 1, threshold: 5%}",
        env={},
    ).rules
    book, h, full = AlertBook(None), ValueHistory(4, 2), ValueHistory(4, 2)
    made = Made(monkeypatch)
    for k in range(7):
        _, rows = book.tick([*(other if k == 0 else []), *rule], store, T0 + 10 * k + 2)
        made.clear()
        h.record_parts(T0 + 10 * k + 2, rows.parts())
        # Tick 5: a.t1's label set made for the freed place; a.t2's not, there being no room.
        assert len(made) == {0: 4, 5: 1}.get(k, 0), k
        full.record(T0 + 10 * k + 2, rows.samples())
        assert seen(h) == seen(full), k
    # G's series forgotten at tick 4; from tick 5 a.t1 (unchanged since tick 0) has its place.
    assert [(s.labels["task"], len(s.points)) for s in h.series()] == [("a.t0", 4), ("a.t1", 2)]


def test_a_label_set_written_by_two_parts_of_a_tick_is_as_the_last_one_says() -> None:
    """Two rules of one name (the book does not forbid it): a plain sample of the same label
    set as a carried one, or the same rule's part twice, ends the run; written in full next."""
    store, rule = one_rule_store()
    book, h, full = AlertBook(None), ValueHistory(10, 100), ValueHistory(10, 100)
    t0 = Labels(alertname="F", severity="warning", task="a.t0")
    for k in range(5):
        now = T0 + 10 * k + 2
        _, rows = book.tick(rule, store, now)
        extra: list[Entry] = [("F", t0, 9.0, 1.0, True)] if k == 1 else []
        parts = [*rows.parts(), *(rows.parts() if k == 3 else ()), extra]
        h.record_parts(now, parts)
        full.record(now, [*rows.samples(), *(rows.samples() if k == 3 else ()), *extra])
        assert seen(h) == seen(full), k
    assert [p.value for p in h.series()[0].points] == [0.0, 9.0, 0.0, 0.0, 0.0]
