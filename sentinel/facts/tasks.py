"""Facts about tasks: one series per task name, and the in-flight entry of one task."""

from __future__ import annotations

from array import array
from bisect import bisect_left

from sentinel.facts.windows import COUNTERS, RUNTIME, TOTAL, Ring

# Cumulative histogram bounds for the celery-exporter compatible latency metrics (seconds).
HISTOGRAM_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800)

# A task between its first event and its last is a plain list (the fastest thing to build and
# index on the event path), [series, sent_ts, received_ts, started_ts], indexed by these.
SERIES, SENT_AT, RECEIVED_AT, STARTED_AT = range(4)


class TaskSeries:
    """Facts about one task name: a windowed ring plus lifetime counters for /metrics."""

    __slots__ = ("histograms", "name", "ring", "totals")

    def __init__(self, name: str, width: float, retention: float) -> None:
        self.name = name
        self.ring = Ring(width, retention)
        self.totals = [0] * len(COUNTERS)
        # [runtime, queue_wait] -> per-bound counts (+Inf last), sum
        self.histograms = (array("d", _ZERO_HISTOGRAM), array("d", _ZERO_HISTOGRAM))

    def count(self, slot: int, now: float) -> None:
        self.ring.counters[self.ring.slot(now) + slot] += 1
        self.totals[slot] += 1

    def observe(self, measure: int, seconds: float, now: float) -> None:
        self.ring.slot(now)
        self.observe_newest(measure, seconds)

    def observe_newest(self, measure: int, seconds: float) -> None:
        """Observe into the ring's newest bucket (the one the last slot() call returned)."""
        if seconds < 0:  # clock skew between producer and worker: unknowable, not negative
            seconds = 0.0
        tail = self.ring.tail
        if tail is not None and (sketch := tail[measure]) is not None:
            sketch.add(seconds)
        else:
            self.ring.add(measure, seconds)
        if measure < TOTAL:
            hist = self.histograms[0 if measure == RUNTIME else 1]
            # The first bound >= seconds ("le"), or +Inf past the last one.
            hist[bisect_left(HISTOGRAM_BOUNDS, seconds)] += 1
            hist[-1] += seconds


_ZERO_HISTOGRAM = [0.0] * (len(HISTOGRAM_BOUNDS) + 2)
