"""A value history as a small inline SVG chart: the value line, the threshold line, and the
evaluations where the condition held. Numbers only: the template draws them."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.alerts.values import ACTIVE, Point

WIDTH, HEIGHT, PAD = 240, 48, 3


@dataclass(frozen=True, slots=True)
class Chart:
    line: str  # SVG polyline points: "x,y x,y ..."
    threshold_y: float | None
    held: tuple[float, ...]  # x of each evaluation where the condition held
    low: float
    high: float
    points: int
    span: float  # seconds from the first point to the last

    @property
    def empty(self) -> bool:
        return self.points == 0


def chart(points: tuple[Point, ...], threshold: float | None) -> Chart:
    values = [p for p in points if p.value is not None]
    if not values:
        return Chart("", None, (), 0.0, 0.0, 0, 0.0)
    first, last = points[0].at, points[-1].at
    span = max(last - first, 1e-9)
    numbers = [p.value for p in values if p.value is not None]
    low = min(numbers) if threshold is None else min(*numbers, threshold)
    high = max(numbers) if threshold is None else max(*numbers, threshold)
    if high == low:
        low, high = low - 1.0, high + 1.0
    low = min(low, 0.0) if low >= 0 else low  # counts and ratios read best from zero

    def x(t: float) -> float:
        return round(PAD + (t - first) / span * (WIDTH - 2 * PAD), 1)

    def y(v: float) -> float:
        return round(HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD), 1)

    line = " ".join(f"{x(p.at)},{y(p.value)}" for p in values if p.value is not None)
    held = tuple(x(p.at) for p in points if p.verdict == ACTIVE)
    return Chart(
        line=line,
        threshold_y=None if threshold is None else y(threshold),
        held=held,
        low=low,
        high=high,
        points=len(values),
        span=last - first,
    )
