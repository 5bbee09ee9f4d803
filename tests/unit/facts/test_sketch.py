from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from sentinel.facts.sketch import ALPHA, MAX_BINS, MIN_VALUE, Sketch

QUANTILES = (0.5, 0.95, 0.99)
N = 5_000


def exact(sorted_values: list[float], q: float) -> float:
    """The empirical quantile: the value at rank floor(q * (n - 1))."""
    return sorted_values[int(q * (len(sorted_values) - 1))]


def sketch_of(values: list[float]) -> Sketch:
    s = Sketch()
    for v in values:
        s.add(v)
    return s


def _bimodal(r: random.Random) -> float:
    return r.gauss(0.05, 0.005) if r.random() < 0.7 else r.gauss(30.0, 3.0)


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "uniform": lambda r: r.uniform(0.001, 100.0),
    "exponential": lambda r: r.expovariate(1 / 2.0),
    "lognormal": lambda r: r.lognormvariate(0.0, 2.0),
    "constant": lambda r: 3.7,
    "bimodal": _bimodal,
    "tiny": lambda r: r.uniform(2e-6, 1e-3),
    "huge": lambda r: r.uniform(1e5, 1e7),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("q", QUANTILES)
def test_quantile_within_one_percent(name: str, q: float) -> None:
    rng = random.Random(f"{name}-1234")
    values = [max(DISTRIBUTIONS[name](rng), 1e-5) for _ in range(N)]
    sketch = sketch_of(values)
    want = exact(sorted(values), q)
    got = sketch.quantile(q)
    assert got is not None
    assert abs(got - want) <= 0.01 * want, (name, q, got, want)
    # the guarantee is tighter than the 1% asked for: ALPHA relative error
    assert abs(got - want) <= ALPHA * want * 1.000001


def test_count_sum_max() -> None:
    s = sketch_of([1.0, 2.0, 3.0, 0.0])
    assert s.count == 4
    assert s.sum == pytest.approx(6.0)
    assert s.max == 3.0
    assert s.zeros == 1


def test_quantile_never_exceeds_max() -> None:
    s = sketch_of([1.0] * 10 + [2.0])
    assert s.quantile(1.0) == 2.0
    assert s.quantile(0.99) == pytest.approx(1.0, rel=ALPHA)  # rank floor(0.99 * 10) = 9
    assert s.quantile(0.0) == pytest.approx(1.0, rel=ALPHA)
    # a bin's representative may lie above every value in it: capped by the exact max
    top = sketch_of([2.0])
    assert top.quantile(1.0) == 2.0
    assert all(sketch_of([v]).quantile(1.0) <= v for v in (0.3, 1.7, 12.0, 1e4))


def test_single_value() -> None:
    s = sketch_of([42.0])
    for q in (0.0, 0.5, 0.99, 1.0):
        assert s.quantile(q) == pytest.approx(42.0, rel=ALPHA)


def test_empty_sketch_returns_none() -> None:
    s = Sketch()
    assert s.quantile(0.5) is None
    assert s.quantile(0.99) is None
    merged = Sketch()
    merged.merge(Sketch())
    assert merged.quantile(0.5) is None
    assert merged.count == 0


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([0.0] * 10, 0.5, 0.0),
        ([0.0] * 10, 0.99, 0.0),
        ([0.0] * 60 + [5.0] * 40, 0.5, 0.0),
        ([0.0] * 60 + [5.0] * 40, 0.95, 5.0),
        ([0.0] * 40 + [5.0] * 60, 0.5, 5.0),
        ([MIN_VALUE / 2] * 10, 0.5, 0.0),
        ([-1.0] * 10, 0.5, 0.0),  # a negative latency (clock skew) counts as zero
    ],
)
def test_zeros(values: list[float], q: float, want: float) -> None:
    s = sketch_of(values)
    assert s.quantile(q) == pytest.approx(want, rel=ALPHA)
    assert s.count == len(values)


def test_merge_equals_sketch_of_union() -> None:
    rng = random.Random(7)
    a = [rng.lognormvariate(0, 1.5) for _ in range(3000)] + [0.0] * 10
    b = [rng.expovariate(0.1) for _ in range(2000)] + [0.0] * 5
    left, right = sketch_of(a), sketch_of(b)
    left.merge(right)
    union = sketch_of(a + b)
    assert left.bins == union.bins
    assert (left.count, left.zeros, left.max) == (union.count, union.zeros, union.max)
    assert left.sum == pytest.approx(union.sum)
    everything = sorted(a + b)
    for q in (0.01, *QUANTILES):
        assert left.quantile(q) == union.quantile(q)
        want = exact(everything, q)
        assert abs(left.quantile(q) - want) <= 0.01 * want  # type: ignore[operator]
    # the merged-in sketch is left alone
    assert right.count == len(b)


def test_merge_into_empty() -> None:
    values = [0.1, 0.2, 0.3]
    merged = Sketch()
    merged.merge(sketch_of(values))
    assert merged.bins == sketch_of(values).bins
    assert merged.quantile(0.5) == pytest.approx(0.2, rel=ALPHA)


def test_bins_are_bounded_on_a_very_wide_range() -> None:
    # 1e-5 .. 1e15 needs about 4600 bins at 0.5% resolution: more than MAX_BINS
    values = [10.0 ** (e / 200.0) for e in range(-1000, 3000)]
    s = sketch_of(values)
    assert len(s.bins) <= MAX_BINS
    assert s.count == len(values)
    ordered = sorted(values)
    # collapsing folds the lowest bins: the high quantiles keep their accuracy
    for q in QUANTILES:
        want = exact(ordered, q)
        assert abs(s.quantile(q) - want) <= 0.01 * want  # type: ignore[operator]


def test_merge_keeps_bins_bounded() -> None:
    low = sketch_of([10.0 ** (e / 200.0) for e in range(-1000, 600)])
    high = sketch_of([10.0 ** (e / 200.0) for e in range(600, 3000)])
    assert len(low.bins) <= MAX_BINS and len(high.bins) <= MAX_BINS
    low.merge(high)
    assert len(low.bins) <= MAX_BINS
    assert low.count == 4000
    assert low.quantile(0.99) == pytest.approx(10.0 ** (int(0.99 * 3999 - 1000) / 200), rel=0.01)


def test_many_identical_values_use_one_bin() -> None:
    s = sketch_of([0.25] * 100_000)
    assert len(s.bins) == 1
    assert s.quantile(0.5) == pytest.approx(0.25, rel=ALPHA)
    assert math.isclose(s.sum, 25_000.0, rel_tol=1e-9)
