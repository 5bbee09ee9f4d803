"""The value history: for each alert label set, the value and verdict of its last N evaluations,
so the status page can draw a rule's value against its threshold and say how often the rule
held. Bounded twice: `points` slots per series and at most `max_series` series (a label set
past the cap is counted in `dropped`, not kept); a series not evaluated for `points` ticks is
forgotten. It lives as long as the process, so a reload (new thresholds) keeps it.

Slots are shared: one ring of tick times, and per series a ring of float32 values and one
verdict byte per tick, indexed by the same slot (5 bytes a point, ~1.2 KiB a series at 240
points). A series that missed ticks has those slots marked "no sample".
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from sentinel.model import Labels

# One byte per point: what the rule said at that evaluation.
NO_SAMPLE, UNKNOWN, INACTIVE, ACTIVE = range(4)
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    value: float | None
    verdict: int  # UNKNOWN, INACTIVE or ACTIVE


class Series:
    """One label set's history, oldest first, as the page reads it: a copy of its slots taken
    at C speed under the lock; Points are made only for the series a page draws."""

    __slots__ = ("_times", "_values", "_verdicts", "labels", "rule", "threshold")

    def __init__(
        self,
        rule: str,
        labels: Labels,
        threshold: float | None,
        times: array[float],
        values: array[float],
        verdicts: bytes,
    ) -> None:
        self.rule, self.labels, self.threshold = rule, labels, threshold
        self._times, self._values, self._verdicts = times, values, verdicts

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(
            Point(at, None if math.isnan(value) else value, v)
            for at, value, v in zip(self._times, self._values, self._verdicts, strict=True)
            if v != NO_SAMPLE
        )

    @property
    def latest(self) -> Point | None:
        """The last evaluation (always a sample: a series ends at its last write)."""
        if not self._verdicts:
            return None
        value = self._values[-1]
        return Point(self._times[-1], None if math.isnan(value) else value, self._verdicts[-1])


class _Ring:
    __slots__ = ("last_tick", "rule", "threshold", "values", "verdicts")

    def __init__(self, rule: str, size: int) -> None:
        self.rule = rule
        self.threshold: float | None = None
        self.values = array("f", [_NAN]) * size
        self.verdicts = bytearray(size)  # NO_SAMPLE
        self.last_tick = -1


def verdict(active: bool | None) -> int:
    return UNKNOWN if active is None else ACTIVE if active else INACTIVE


class ValueHistory:
    def __init__(self, points: int = 240, max_series: int = 10_000) -> None:
        if points < 2:
            raise ValueError("points must be at least 2")
        self.points = points
        self.max_series = max_series
        self.dropped = 0  # samples of label sets past max_series, not kept
        self.lock = threading.Lock()
        self._times = array("d", [_NAN]) * points
        self._tick = -1  # the last tick written
        self._series: dict[Labels, _Ring] = {}

    def __len__(self) -> int:
        return len(self._series)

    def record(
        self,
        now: float,
        samples: Iterable[tuple[str, Labels, float | None, float | None, bool | None]],
    ) -> None:
        """One evaluation: (rule, labels, value, threshold, active) for every sample."""
        with self.lock:
            self._tick += 1
            tick, size = self._tick, self.points
            slot = tick % size
            self._times[slot] = now
            series = self._series
            isfinite = math.isfinite
            for rule, labels, value, threshold, active in samples:
                ring = series.get(labels)
                if ring is None:
                    if len(series) >= self.max_series:
                        self.dropped += 1
                        continue
                    ring = series[labels] = _Ring(rule, size)
                if ring.last_tick != tick - 1:
                    # Ticks this series missed: their slots still hold values from a lap ago.
                    for missed in range(max(ring.last_tick + 1, tick - size + 1), tick):
                        ring.verdicts[missed % size] = NO_SAMPLE
                ring.values[slot] = _NAN if value is None or not isfinite(value) else value
                ring.verdicts[slot] = UNKNOWN if active is None else ACTIVE if active else INACTIVE
                ring.last_tick = tick
                ring.rule = rule
                if threshold is not None and isfinite(threshold):
                    ring.threshold = threshold
            if slot == 0:  # once a lap: forget series with nothing left in the window
                oldest = tick - size + 1
                for labels in [k for k, r in series.items() if r.last_tick < oldest]:
                    del series[labels]

    def series(self, rule: str | None = None) -> list[Series]:
        """Every series (of one rule), each oldest point first."""
        with self.lock:
            rings = [(k, r) for k, r in self._series.items() if rule is None or r.rule == rule]
            return [self._read(labels, ring) for labels, ring in rings]

    def get(self, labels: Labels) -> Series | None:
        with self.lock:
            ring = self._series.get(labels)
            return None if ring is None else self._read(labels, ring)

    def _read(self, labels: Labels, ring: _Ring) -> Series:
        """The slots from the window's first tick to the series' last, oldest first."""
        size = self.points
        first, last = max(0, self._tick - size + 1), ring.last_tick
        if last < first:
            return Series(ring.rule, labels, ring.threshold, array("d"), array("f"), b"")
        a, b = first % size, last % size
        if a <= b:
            cut = slice(a, b + 1)
            times, values, verdicts = self._times[cut], ring.values[cut], ring.verdicts[cut]
        else:  # wraps past the end of the ring
            times = self._times[a:] + self._times[: b + 1]
            values = ring.values[a:] + ring.values[: b + 1]
            verdicts = ring.verdicts[a:] + ring.verdicts[: b + 1]
        return Series(ring.rule, labels, ring.threshold, times, values, bytes(verdicts))

    @property
    def nbytes(self) -> int:
        """What the rings hold (the label sets are shared with the alert book's cache)."""
        with self.lock:
            per = sum(
                sys.getsizeof(r) + sys.getsizeof(r.values) + sys.getsizeof(r.verdicts)
                for r in self._series.values()
            )
            return per + sys.getsizeof(self._series) + sys.getsizeof(self._times)


@dataclass(frozen=True, slots=True)
class Firings:
    """What a series' verdicts say: how much of the window the condition held, and how many
    times it would have fired (held for at least `for`)."""

    held: float  # fraction of points with the condition true
    fired: int


def firings(points: Iterable[Point], for_: float) -> Firings:
    held = total = fired = 0
    run_start: float | None = None
    counted = False
    for p in points:
        if p.verdict == UNKNOWN:
            continue  # the rule could not tell: neither held nor broke a run
        total += 1
        if p.verdict == ACTIVE:
            held += 1
            if run_start is None:
                run_start, counted = p.at, False
            if not counted and p.at - run_start >= for_:
                fired += 1
                counted = True
        else:
            run_start = None
    return Firings(held / total if total else 0.0, fired)
