"""A mergeable quantile sketch with relative-error guarantees (the DDSketch idea).

Values fall into logarithmic bins of ratio GAMMA, so any quantile is reported within ALPHA
relative error of a value that really is at that rank. Memory is capped by MAX_BINS: past it the
lowest bins are folded together, which only costs accuracy at the low end, never at p95/p99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ALPHA = 0.005
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
_INV_LOG_GAMMA = 1.0 / _LOG_GAMMA
MIN_VALUE = 1e-6  # below a microsecond everything is "zero" for task latencies
MAX_BINS = 2048


class Sketch:
    __slots__ = ("bins", "count", "max", "sum", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0
        self.zeros = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value > self.max:
            self.max = value
        if value <= MIN_VALUE:
            self.zeros += 1
            return
        key = math.ceil(math.log(value) * _INV_LOG_GAMMA)
        bins = self.bins
        bins[key] = bins.get(key, 0) + 1
        if len(bins) > MAX_BINS:
            self._collapse()

    def merge(self, other: Sketch) -> None:
        self.count += other.count
        self.zeros += other.zeros
        self.sum += other.sum
        if other.max > self.max:
            self.max = other.max
        bins = self.bins
        for key, n in other.bins.items():
            bins[key] = bins.get(key, 0) + n
        if len(bins) > MAX_BINS:
            self._collapse()

    @classmethod
    def merged(cls, sketches: Iterable[Sketch]) -> Sketch:
        """A new sketch holding all of them: the same result as merge() one by one.

        A window query merges dozens of small bucket sketches, so the per-merge attribute
        traffic, not the bins, is what this saves.
        """
        out = cls()
        bins = out.bins
        get = bins.get
        count = zeros = 0
        total = 0.0
        top = 0.0
        for other in sketches:
            count += other.count
            zeros += other.zeros
            total += other.sum
            if other.max > top:
                top = other.max
            for key, n in other.bins.items():
                bins[key] = get(key, 0) + n
            if len(bins) > MAX_BINS:
                out._collapse()
        out.count, out.zeros, out.sum, out.max = count, zeros, total, top
        return out

    def _collapse(self) -> None:
        keys = sorted(self.bins)
        excess = len(keys) - MAX_BINS
        floor = keys[excess]
        folded = sum(self.bins.pop(k) for k in keys[:excess])
        self.bins[floor] += folded

    def quantile(self, q: float) -> float | None:
        """Value at quantile q (0..1), or None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen > rank:
                return min(2.0 * GAMMA**key / (GAMMA + 1.0), self.max)
        return self.max
