"""Per-series rules evaluated on changed series only (rules/incremental.py, facts/journal.py)
give every tick exactly what evaluating every series gives: same alerts, same transitions, same
rows. Two books tick the same store, one incremental and one not, over random traffic: writes
to a few series at a time, quiet stretches in which buckets leave the windows, ticks at uneven
intervals (the liveness watch's extra ones too), a reload, a retention change and a budget drop."""

from __future__ import annotations

import random

import pytest

from sentinel.alerts.book import AlertBook
from sentinel.config import parse
from sentinel.facts.journal import Journal
from sentinel.facts.store import FactStore
from sentinel.facts.windows import FAILED, QUEUE_WAIT, RECEIVED, RUNTIME, STARTED, SUCCEEDED
from sentinel.rules import incremental
from tests.helpers import T0

RULES = """
limits: {bucket: 10s}
rules:
  - {name: FailAll, kind: failure_rate, tasks: ["*"], window: 1m, threshold: 20%, min_count: 3}
  - {name: FailApp, kind: failure_rate, tasks: ["a.*"], window: 5m, threshold: 10%,
     min_count: 5, for: 30s}
  - {name: SlowAll, kind: task_latency, tasks: ["*"], measure: runtime, percentile: 90,
     threshold: 2s, window: 2m, min_count: 3}
  - {name: SlowB, kind: task_latency, tasks: ["b.*"], measure: queue_wait, percentile: 50,
     threshold: 1s, window: 5m, min_count: 2, for: 20s}
  - {name: NoLiveWorkers, kind: no_live_workers}
"""

NAMES = [f"{app}.t{i}" for app in "abc" for i in range(8)]


def traffic(store: FactStore, rng: random.Random, now: float) -> None:
    with store.lock:
        for name in rng.sample(NAMES, rng.randint(0, 6)):
            series = store.series(name)
            assert series is not None
            bad = rng.random() < 0.4
            for _ in range(rng.randint(1, 4)):
                for slot in (RECEIVED, STARTED, FAILED if bad else SUCCEEDED):
                    series.count(slot, now)
                series.observe(RUNTIME, rng.expovariate(0.5 if bad else 3.0), now)
                series.observe(QUEUE_WAIT, rng.expovariate(1.0), now)


def rows(book: AlertBook, rules, store: FactStore, now: float):
    transitions, table = book.tick(rules, store, now)
    return [(t.fingerprint, t.before, t.alert) for t in transitions], sorted(
        (r.rule, tuple(sorted(r.labels.items())), r.value, r.state) for r in table
    )


@pytest.mark.parametrize("seed", range(6))
def test_changed_series_only_gives_what_every_series_gives(seed, monkeypatch):
    if seed % 2:
        monkeypatch.setattr(incremental, "CHUNK", 3)  # many lock holds a rule
    rng = random.Random(seed)
    rules = parse(RULES, env={}).rules
    store = FactStore(bucket=10.0, retention=300.0)
    every, changed = AlertBook(None, incremental=False), AlertBook(None)
    now = T0
    for step in range(160):
        quiet = 40 <= step % 80 < 60  # no writes for a while: buckets only leave windows
        now += rng.choice((0.5, 3.0, 7.0, 15.0, 15.0, 15.0, 31.0))
        if not quiet:
            traffic(store, rng, now)
        if step % 10 == 0:
            store.prune(now)
        if step == 70:
            # A reload: new rule objects inherit the old ones' alerts, and must step them.
            rules = parse(RULES, env={}).rules
        if step == 100:
            store.set_retention(200.0)  # answers change without a write: the journal says so
        if step == 120:
            store.max_window_bytes = 1  # a budget drop shortens every window at once
            store.prune(now)
            store.max_window_bytes = None
        # The two books alternate which ticks first: each tick snapshots the journal.
        pair = (every, changed) if step % 2 else (changed, every)
        got = {id(b): rows(b, rules, store, now) for b in pair}
        assert got[id(changed)] == got[id(every)], f"step {step}"
        assert changed.alerts == every.alerts, f"step {step}"
    assert any(a.state.value == "firing" for a in every.alerts.values())
    assert any(a.state.value == "resolved" for a in every.alerts.values()) or every.alerts


def test_a_tick_evaluates_only_what_changed():
    rules = parse(RULES, env={}).rules
    store = FactStore(bucket=10.0, retention=300.0)
    book = AlertBook(None)
    rng = random.Random(1)
    traffic(store, rng, T0)
    with store.lock:
        for name in NAMES:
            store.series(name).count(RECEIVED, T0)  # type: ignore[union-attr]
    book.tick(rules, store, T0)
    with store.lock:
        store.series("a.t1").count(FAILED, T0 + 5)  # type: ignore[union-attr]
    evaluated: dict[str, int] = {}
    original = book._series["FailAll"].update.__func__  # type: ignore[attr-defined]

    def spy(self, *args):
        out = original(self, *args)
        evaluated[self.rule.name] = len(out)
        return out

    incremental.SeriesSamples.update = spy  # type: ignore[method-assign]
    try:
        book.tick(rules, store, T0 + 6)
    finally:
        incremental.SeriesSamples.update = original  # type: ignore[method-assign]
    # One series written, none left a window (6 s later): one evaluation per rule matching it.
    assert evaluated == {"FailAll": 1, "FailApp": 1, "SlowAll": 1, "SlowB": 0}


def test_a_name_forgotten_and_one_added_in_the_same_tick_is_evaluated():
    """The store bumps names_version when it removes names: a rule's kept samples start over
    even when as many names arrived as went (the matching list is as long as before)."""
    rules = parse(RULES, env={}).rules
    store = FactStore(bucket=10.0, retention=300.0)
    book, reference = AlertBook(None), AlertBook(None, incremental=False)
    rng = random.Random(2)
    for k in range(3):
        traffic(store, rng, T0 + 15 * k)
        assert rows(book, rules, store, T0 + 15 * k) == rows(reference, rules, store, T0 + 15 * k)
    now = T0 + 45
    with store.lock:
        del store.tasks[next(iter(store.tasks))]  # forgotten (as a retention of names would)
        store.names_version += 1
        series = store.series("a.new")
        assert series is not None
        for _ in range(6):
            series.count(FAILED, now)
    got, want = rows(book, rules, store, now), rows(reference, rules, store, now)
    assert got == want
    assert any(
        r[1] == (("alertname", "FailAll"), ("severity", "warning"), ("task", "a.new"))
        for r in got[1]
    )


def test_the_journal_lists_buckets_that_left_a_window():
    j = Journal(10.0)
    j.note_open(100.0, "x")
    j.note_open(110.0, "y")
    # Over a 60 s window a bucket starting at 100 is in it while now < 170.
    assert j.left_window(60.0, 165.0, 169.0) == set()
    assert j.left_window(60.0, 165.0, 170.0) == {"x"}
    assert j.left_window(60.0, 170.0, 185.0) == {"y"}
    j.forget_before(110.0)
    assert j.left_window(60.0, 175.0, 185.0) == {"y"}
    # A rule whose last tick is further back than what was forgotten cannot be told.
    assert j.left_window(60.0, 165.0, 185.0) is None


def test_the_journal_stays_bounded_when_nothing_prunes():
    j = Journal(10.0, retention=60.0)
    for k in range(1000):
        j.note_open(100.0 + 10 * k, "x")
    assert len(j.opened) <= (60 + 20 + 120) / 10 + 1


def test_the_journal_says_when_it_no_longer_reaches_back():
    j = Journal(10.0)
    first = j.snapshot()
    for _ in range(100):
        j.snapshot()
    assert j.written_since(first) is None
    j.written[j.gen].append("x")
    assert j.written_since(j.gen - 1) == {"x"}
