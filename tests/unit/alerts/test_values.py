"""The value history ring: bounded in points and in series, stale series forgotten, missed
ticks not mistaken for old values, and the "how often would it have fired" count."""

from __future__ import annotations

import pytest

from sentinel.alerts.values import ACTIVE, INACTIVE, UNKNOWN, Point, ValueHistory, firings
from sentinel.model import Labels
from tests.helpers import T0

A, B = Labels(alertname="R", queue="a"), Labels(alertname="R", queue="b")


def tick(h: ValueHistory, at: float, *samples: tuple[Labels, float | None, bool | None]) -> None:
    h.record(at, [("R", labels, value, 10.0, active) for labels, value, active in samples])


def values(h: ValueHistory, labels: Labels) -> list[float | None]:
    series = h.get(labels)
    assert series is not None
    return [p.value for p in series.points]


def test_a_series_keeps_only_the_last_points_evaluations() -> None:
    h = ValueHistory(points=4, max_series=10)
    for i in range(10):
        tick(h, T0 + i, (A, float(i), i > 6))
    series = h.get(A)
    assert series is not None
    assert [p.value for p in series.points] == [6.0, 7.0, 8.0, 9.0]
    assert [p.at for p in series.points] == [T0 + 6, T0 + 7, T0 + 8, T0 + 9]
    assert [p.verdict for p in series.points] == [INACTIVE, ACTIVE, ACTIVE, ACTIVE]
    assert series.threshold == 10.0 and series.rule == "R"


def test_label_sets_past_the_cap_are_counted_not_kept() -> None:
    h = ValueHistory(points=4, max_series=2)
    c = Labels(alertname="R", queue="c")
    tick(h, T0, (A, 1.0, False), (B, 2.0, False), (c, 3.0, False))
    tick(h, T0 + 1, (A, 1.0, False), (B, 2.0, False), (c, 3.0, False))
    assert len(h) == 2 and h.get(c) is None
    assert h.dropped == 2


def test_missed_ticks_are_gaps_not_the_values_of_a_lap_ago() -> None:
    h = ValueHistory(points=4, max_series=10)
    for i in range(4):
        tick(h, T0 + i, (A, float(i), False), (B, 100.0 + i, False))
    tick(h, T0 + 4, (A, 4.0, False))  # B not evaluated (its worker gone, its rule failing)
    tick(h, T0 + 5, (A, 5.0, False))
    tick(h, T0 + 6, (A, 6.0, False), (B, 106.0, False))
    assert values(h, B) == [103.0, 106.0]
    assert values(h, A) == [3.0, 4.0, 5.0, 6.0]


def test_a_series_not_evaluated_for_a_whole_lap_is_forgotten() -> None:
    h = ValueHistory(points=4, max_series=2)
    tick(h, T0, (A, 1.0, False), (B, 1.0, False))
    for i in range(1, 9):
        tick(h, T0 + i, (A, 1.0, False))
    assert h.get(B) is None and len(h) == 1
    c = Labels(alertname="R", queue="c")  # the freed slot is usable again
    tick(h, T0 + 9, (c, 1.0, False))
    assert h.get(c) is not None and h.dropped == 0


def test_no_value_and_non_finite_values_read_as_none() -> None:
    h = ValueHistory(points=4, max_series=2)
    tick(h, T0, (A, None, None))
    tick(h, T0 + 1, (A, float("inf"), True))
    series = h.get(A)
    assert series is not None
    assert [(p.value, p.verdict) for p in series.points] == [(None, UNKNOWN), (None, ACTIVE)]


def test_series_are_listed_per_rule() -> None:
    h = ValueHistory(points=4, max_series=10)
    h.record(T0, [("R", A, 1.0, 1.0, False), ("S", B, 2.0, 1.0, True)])
    assert [s.labels for s in h.series("S")] == [B]
    assert len(h.series()) == 2


def test_memory_grows_with_points_and_series() -> None:
    small, big = ValueHistory(points=10, max_series=100), ValueHistory(points=1000, max_series=100)
    for h in (small, big):
        h.record(T0, [("R", Labels(queue=str(i)), 1.0, 1.0, False) for i in range(100)])
    assert big.nbytes > small.nbytes + 100 * 990 * 5  # float32 value + verdict byte a point


def test_fewer_than_two_points_is_refused() -> None:
    with pytest.raises(ValueError):
        ValueHistory(points=1)


def P(at: float, verdict: int) -> Point:
    return Point(T0 + at, 1.0, verdict)


@pytest.mark.parametrize(
    ("verdicts", "for_", "held", "fired"),
    [
        ([INACTIVE] * 4, 0.0, 0.0, 0),
        ([ACTIVE, INACTIVE, ACTIVE, INACTIVE], 0.0, 0.5, 2),
        ([ACTIVE, ACTIVE, INACTIVE, ACTIVE], 1.0, 0.75, 1),  # the last run is shorter than for
        ([ACTIVE, ACTIVE, ACTIVE, ACTIVE], 1.0, 1.0, 1),  # one long run fires once
        ([ACTIVE, UNKNOWN, ACTIVE, INACTIVE], 2.0, pytest.approx(2 / 3), 1),  # no verdict: no break
    ],
)
def test_firings(verdicts: list[int], for_: float, held: object, fired: int) -> None:
    result = firings([P(i, v) for i, v in enumerate(verdicts)], for_)
    assert (result.held, result.fired) == (held, fired)
