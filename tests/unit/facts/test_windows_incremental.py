"""The kept window answers (windows.py, INCREMENTAL) against a re-sum of every bucket.

Random traffic over a ring, queried tick by tick as the evaluator does: after every change
(new buckets, buckets leaving the window or the ring, the clock stepping back, a budget drop)
the incremental answer must be the full one, and quantiles must stay within the sketch's
relative error of the exact quantile of the observations in the window.
"""

from __future__ import annotations

import random

import pytest

from sentinel.facts import windows
from sentinel.facts.sketch import ALPHA
from sentinel.facts.windows import NC, QUEUE_WAIT, RUNTIME, TOTAL, Ring
from tests.helpers import T0

WINDOWS = (60.0, 300.0, 600.0)
QS = (0.5, 0.95, 0.99)


def full(ring: Ring, fn: str, *args: float) -> object:
    windows.INCREMENTAL = False
    try:
        return getattr(ring, fn)(*args)
    finally:
        windows.INCREMENTAL = True


@pytest.mark.parametrize("keep_bins", [0, 40, windows.KEEP_BINS])  # 0: always kept bins
@pytest.mark.parametrize("seed", range(6))
def test_incremental_answers_are_the_full_ones(
    seed: int, keep_bins: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(windows, "KEEP_BINS", keep_bins)
    rng = random.Random(seed)
    ring = Ring(10.0, 600.0)
    now = T0
    for _tick in range(120):
        now += rng.choice((1.0, 7.5, 15.0, 15.0, 40.0, 130.0))
        if rng.random() < 0.05:
            now -= 25.0  # the clock steps back: writes land in the newest bucket
        if rng.random() < 0.7:  # some ticks find the series idle
            for _ in range(rng.randrange(1, 30)):
                ring.counters[ring.slot(now) + rng.randrange(NC)] += 1
                ring.observe(rng.choice((QUEUE_WAIT, RUNTIME, TOTAL)), rng.expovariate(2.0), now)
                if rng.random() < 0.1:
                    ring.observe(RUNTIME, 0.0, now)  # a zero
        if rng.random() < 0.1:
            ring.trim(now)
        if rng.random() < 0.03 and len(ring) > 2:
            ring.drop_until(ring.starts[1])  # as the budget does
        for window in WINDOWS:
            assert ring.counts(window, now) == full(ring, "counts", window, now)
            for measure in (QUEUE_WAIT, RUNTIME, TOTAL):
                for q in QS:
                    got = ring.quantile(measure, window, now, q)
                    assert got == full(ring, "quantile", measure, window, now, q)
                    merged = ring.sketch(measure, window, now)
                    assert got == (merged.quantile(q), merged.count)


@pytest.mark.parametrize("keep_bins", [0, windows.KEEP_BINS])
def test_quantiles_within_the_sketch_error_of_exact_ones(
    keep_bins: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(windows, "KEEP_BINS", keep_bins)
    rng = random.Random(17)
    ring = Ring(10.0, 600.0)
    seen: list[tuple[float, float]] = []  # (time, value)
    now = T0
    for _tick in range(90):
        now += 15.0
        for _ in range(rng.randrange(0, 60)):
            v = rng.lognormvariate(-1.0, 1.5)
            ring.observe(RUNTIME, v, now)
            seen.append((now, v))
        for window in WINDOWS:
            # The window is exact to one bucket: the buckets overlapping (now - window, now].
            lo, hi = ring._span(window, now)
            since = ring.starts[lo] if hi > lo else now
            values = sorted(v for t, v in seen if t - t % 10.0 >= since)
            for q in QS:
                got, count = ring.quantile(RUNTIME, window, now, q)
                assert count == len(values)
                if not values:
                    assert got is None
                    continue
                want = values[int(q * (len(values) - 1))]
                assert got is not None
                assert abs(got - want) <= ALPHA * want * 1.000001, (window, q, got, want)


def test_an_unchanged_series_is_answered_from_what_was_kept() -> None:
    ring = Ring(10.0, 600.0)
    for i in range(30):
        ring.observe(RUNTIME, 0.1 * (i + 1), T0 + 10 * i)
    now = T0 + 300.0
    first = ring.quantile(RUNTIME, 600.0, now, 0.95)
    ring.bins[RUNTIME][0] += 0  # no write, no version change
    version = ring.version
    assert ring.quantile(RUNTIME, 600.0, now + 15.0, 0.95) == first
    assert ring.version == version
    # a write invalidates it
    ring.observe(RUNTIME, 100.0, now + 15.0)
    assert ring.quantile(RUNTIME, 600.0, now + 15.0, 0.99) != first


def test_kept_state_is_accounted_and_freed_by_the_budget_drop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(windows, "KEEP_BINS", 0)
    ring = Ring(10.0, 600.0)
    for i in range(60):
        for j in range(20):
            ring.observe(RUNTIME, 0.01 * (j + 1) * (i + 1), T0 + 10 * i)
    before = ring.nbytes()
    ring.quantile(RUNTIME, 600.0, T0 + 600.0, 0.95)
    ring.counts(600.0, T0 + 600.0)
    assert ring.nbytes() > before
    assert ring.kept
    ring.drop_until(ring.starts[0])
    assert not ring.memo and not ring.kept


def test_counters_from_the_running_sums_after_an_old_bucket_is_rewritten() -> None:
    ring = Ring(10.0, 600.0)
    for k in range(30):
        ring.counters[ring.slot(T0 + 10 * k) + 3] += k
    now = T0 + 295
    assert ring.counts(300.0, now) == full(ring, "counts", 300.0, now)
    ring.buckets[5].counts[3] = 1000  # a tool rewriting a frozen bucket: the sums follow
    assert ring.counts(300.0, now)[3] == sum(range(30)) - 5 + 1000
    assert ring.counts(300.0, now) == full(ring, "counts", 300.0, now)
    assert ring.counts(120.0, now) == full(ring, "counts", 120.0, now)
