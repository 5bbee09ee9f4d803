from __future__ import annotations

import pytest

from sentinel.clock import FakeClock
from sentinel.facts.windows import COUNTERS, FAILED, MEASURES, RUNTIME, SUCCEEDED, Ring
from tests.helpers import T0


def count(ring: Ring, slot: int, now: float, n: int = 1) -> None:
    ring.bucket(now).counts[slot] += n


def test_bucket_is_shared_within_its_width() -> None:
    ring = Ring(10.0, 600.0)
    a = ring.bucket(T0 + 1)
    assert ring.bucket(T0 + 9.99).start == a.start == T0
    count(ring, SUCCEEDED, T0 + 9.99)
    assert a.counts[SUCCEEDED] == 1  # the same bucket
    b = ring.bucket(T0 + 10)
    assert b.start == T0 + 10
    assert len(ring.buckets) == 2


def test_clock_stepping_back_counts_in_newest_bucket() -> None:
    ring = Ring(10.0, 600.0)
    newest = ring.bucket(T0 + 50)
    assert ring.bucket(T0 + 5).start == newest.start
    count(ring, FAILED, T0 + 5)
    assert newest.counts[FAILED] == 1
    assert len(ring.buckets) == 1


@pytest.mark.parametrize(
    ("window", "now_offset", "expected"),
    [
        # events: 1 at T0+5, 2 at T0+15, 4 at T0+25, 8 at T0+95; a bucket counts when it
        # overlaps (now - window, now], so the edge is exact to one bucket width
        (300.0, 100.0, 15),
        (10.0, 100.0, 8),  # since T0+90: only [T0+90, T0+100)
        (70.0, 100.0, 8),  # since T0+30: [T0+20, T0+30) ends exactly there -> excluded
        (75.0, 100.0, 12),  # since T0+25: [T0+20, T0+30) overlaps
        (90.0, 100.0, 14),  # since T0+10: [T0, T0+10) ends exactly there -> excluded
        (91.0, 100.0, 15),
        (30.0, 26.0, 7),
        (30.0, 14.0, 3),  # queried in the past: buckets that start after `now` don't count
        (4.0, 14.0, 2),  # since T0+10: [T0+10, T0+20) only
    ],
)
def test_counts_within_window(window: float, now_offset: float, expected: int) -> None:
    clock = FakeClock(T0)
    ring = Ring(10.0, 600.0)
    for at, n in ((5, 1), (15, 2), (25, 4), (95, 8)):
        clock.set(T0 + at)
        count(ring, FAILED, clock.now(), n)
    assert ring.counts(window, T0 + now_offset)[FAILED] == expected
    assert ring.counts(window, T0 + now_offset)[SUCCEEDED] == 0


def test_counts_every_slot_separately() -> None:
    ring = Ring(10.0, 600.0)
    for slot in range(len(COUNTERS)):
        count(ring, slot, T0 + 1, slot + 1)
    assert ring.counts(60.0, T0 + 2) == [i + 1 for i in range(len(COUNTERS))]


def test_buckets_expire_after_retention() -> None:
    clock = FakeClock(T0)
    ring = Ring(10.0, 60.0)
    count(ring, SUCCEEDED, clock.now(), 5)
    clock.advance(30)
    count(ring, SUCCEEDED, clock.now(), 1)
    assert ring.counts(60.0, clock.now())[SUCCEEDED] == 6
    clock.advance(40)  # T0+70: the first bucket [T0, T0+10) is now older than retention
    count(ring, SUCCEEDED, clock.now(), 1)
    assert ring.buckets[0].start > T0
    assert ring.counts(3600.0, clock.now())[SUCCEEDED] == 2
    # with no new events, trim() drops what has aged out
    clock.advance(1000)
    ring.trim(clock.now())
    assert len(ring.buckets) == 0
    assert ring.counts(3600.0, clock.now()) == [0] * len(COUNTERS)


@pytest.mark.parametrize(
    ("width", "retention", "step"),
    [(10.0, 600.0, 0.37), (10.0, 60.0, 3.0), (1.0, 30.0, 0.1), (7.0, 50.0, 1.3), (10, 25, 11)],
)
def test_bucket_count_is_bounded(width: float, retention: float, step: float) -> None:
    clock = FakeClock(T0 + 3)
    ring = Ring(width, retention)
    bound = retention / width + 2
    for _ in range(20_000):
        count(ring, SUCCEEDED, clock.now())
        assert len(ring.buckets) <= bound
        clock.advance(step)
    assert len(ring.buckets) >= int(retention / width)  # it really was filling up
    starts = [b.start for b in ring.buckets]
    assert starts == sorted(starts)


def test_sketches_merge_over_the_window() -> None:
    ring = Ring(10.0, 600.0)
    for at, value in ((1, 1.0), (11, 2.0), (21, 3.0), (31, 100.0)):
        ring.observe(RUNTIME, value, T0 + at)
    merged = ring.sketch(RUNTIME, 600.0, T0 + 35)
    assert merged.count == 4
    assert merged.max == 100.0
    recent = ring.sketch(RUNTIME, 15.0, T0 + 35)  # buckets [T0+20..) and [T0+30..)
    assert recent.count == 2
    assert recent.quantile(0.0) == pytest.approx(3.0, rel=0.01)
    # a measure with no observation is an empty sketch, not an error
    assert ring.sketch(MEASURES.index("queue_wait"), 600.0, T0 + 35).quantile(0.5) is None
    # merging into the query result leaves the buckets untouched
    assert ring.sketch(RUNTIME, 600.0, T0 + 35).count == 4


def test_ring_bins_are_those_of_a_sketch_of_the_same_observations() -> None:
    import random

    from sentinel.facts.sketch import Sketch

    rng = random.Random(3)
    ring = Ring(10.0, 120.0)
    seen: list[tuple[float, float]] = []  # (when, value)
    now = T0
    for _ in range(3000):
        now += rng.uniform(0.0, 0.5)
        value = rng.choice((0.0, rng.lognormvariate(-2.0, 1.5), rng.expovariate(0.2)))
        ring.observe(RUNTIME, value, now)
        seen.append((now, value))
        if rng.random() < 0.01:
            ring.trim(now)
    for window in (10.0, 15.0, 60.0, 120.0):
        since = now - window
        # the buckets overlapping the window, as the ring counts them
        first = ring.starts[ring._span(window, now)[0]]
        want = Sketch()
        for at, value in seen:
            if at - at % 10.0 >= first:
                want.add(value)
        got = ring.sketch(RUNTIME, window, now)
        assert got.bins == want.bins, window
        assert (got.count, got.zeros, got.max) == (want.count, want.zeros, want.max)
        assert first <= since + 10.0
        for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
            assert ring.quantile(RUNTIME, window, now, q) == (want.quantile(q), want.count)


def test_a_bucket_folds_its_lowest_bins_past_max_bins_like_a_sketch() -> None:
    from sentinel.facts.sketch import MAX_BINS, Sketch

    values = [10.0 ** (e / 200.0) for e in range(-1000, 3000)]
    ring = Ring(10.0, 600.0)
    want = Sketch()
    for v in values[::-1]:
        ring.observe(RUNTIME, v, T0 + 1)
        want.add(v)
    got = ring.sketch(RUNTIME, 600.0, T0 + 1)
    assert len(got.bins) <= MAX_BINS
    assert got.bins == want.bins
    ring.trim(T0 + 10)  # sealed into the arrays: the same bins
    assert len(ring.bins[RUNTIME]) <= MAX_BINS
    assert ring.sketch(RUNTIME, 600.0, T0 + 10).bins == want.bins
    assert got.quantile(0.99) == want.quantile(0.99)


def test_a_bin_count_past_one_packed_bin_spreads_over_several() -> None:
    """A packed bin holds a count up to COUNT_MASK: a busier bin in one bucket (one task name,
    thousands of runs of the same duration in 10 s) takes several bins of its key, and every
    read (sketch, quantile fresh and from kept bins, the clock stepping back) counts them all."""
    from sentinel.facts.sketch import Sketch
    from sentinel.facts.windows import COUNT_MASK, KEEP_BINS

    ring = Ring(10.0, 600.0)
    want = Sketch()
    busy = 2 * COUNT_MASK + 5
    for b in range(3):  # three buckets, each with one bin far past a packed bin's count
        for _ in range(busy):
            ring.observe(RUNTIME, 0.25, T0 + 10 * b)
            want.add(0.25)
        ring.observe(RUNTIME, 3.0 + b, T0 + 10 * b)
        want.add(3.0 + b)
    now = T0 + 25
    got = ring.sketch(RUNTIME, 600.0, now)
    assert got.bins == want.bins and got.count == want.count == 3 * busy + 3
    for q in (0.0, 0.5, 0.99, 0.9999, 1.0):
        assert ring.quantile(RUNTIME, 600.0, now, q) == (want.quantile(q), want.count)
    ring.trim(T0 + 30)  # the newest bucket sealed as well
    assert ring.quantile(RUNTIME, 600.0, T0 + 30, 0.9999) == (want.quantile(0.9999), want.count)
    # The clock steps back into a sealed bucket: its bins reopen whole.
    ring.observe(RUNTIME, 0.25, T0 + 21)
    want.add(0.25)
    assert ring.sketch(RUNTIME, 600.0, T0 + 30).bins == want.bins

    # Kept merged bins (a window with many bins) take the spread counts too.
    ring = Ring(10.0, 600.0)
    want = Sketch()
    for b in range(40):
        at = T0 + 10 * b
        for k in range(KEEP_BINS // 8):
            ring.observe(RUNTIME, 1.02 ** (b + k), at)
            want.add(1.02 ** (b + k))
        for _ in range(COUNT_MASK + 3):
            ring.observe(RUNTIME, 0.5, at)
            want.add(0.5)
        assert ring.quantile(RUNTIME, 600.0, at + 5, 0.5) == (want.quantile(0.5), want.count)
    assert ring.kept  # the kept-bins path was the one taken
