"""Facts about tasks: one series per task name, the metrics of one (name, hostname, queue),
and the in-flight entry of one task."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left

from prometheus_client import Histogram

from sentinel.facts.windows import COUNTERS, FAILED, Ring

# The latency histograms' bounds (seconds): celery-exporter's default, which is
# prometheus_client's, so its dashboards' histogram_quantile() reads the same buckets.
HISTOGRAM_BOUNDS = tuple(b for b in Histogram.DEFAULT_BUCKETS if not math.isinf(b))
RUNTIME_HIST, QUEUE_WAIT_HIST = 0, 1

# A task between its first event and its last is a plain list (the fastest thing to build and
# index on the event path), [series, sent_ts, received_ts, started_ts, queue], indexed by
# these; queue is "" until known.
SERIES, SENT_AT, RECEIVED_AT, STARTED_AT, QUEUE = range(5)


class TaskSeries:
    """Facts about one task name: a windowed ring plus lifetime counters."""

    __slots__ = ("name", "ring", "totals")

    def __init__(self, name: str, width: float, retention: float) -> None:
        self.name = name
        self.ring = Ring(width, retention)
        self.totals = [0] * len(COUNTERS)

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


class TaskMetrics:
    """celery-exporter's counters and histograms for one (name, hostname, queue_name): lifetime
    values for /metrics, kept while events come (the store prunes the idle ones)."""

    __slots__ = ("exceptions", "histograms", "seen_at", "totals")

    def __init__(self, now: float) -> None:
        self.totals = [0] * len(COUNTERS)
        # task-failed by exception class; None until the first (most tasks never fail)
        self.exceptions: dict[str, int] | None = None
        # [runtime, queue_wait] -> per-bound counts (+Inf last), sum
        self.histograms = (array("d", _ZERO_HISTOGRAM), array("d", _ZERO_HISTOGRAM))
        self.seen_at = now

    def count(self, slot: int, now: float) -> None:
        self.totals[slot] += 1
        self.seen_at = now

    def fail(self, exception: str, now: float) -> None:
        """One task-failed; the caller made sure `exception` is a key it may add (the cap)."""
        self.totals[FAILED] += 1
        self.seen_at = now
        exceptions = self.exceptions
        if exceptions is None:
            exceptions = self.exceptions = {}
        exceptions[exception] = exceptions.get(exception, 0) + 1

    def observe(self, histogram: int, seconds: float) -> None:
        hist = self.histograms[histogram]
        # The first bound >= seconds ("le"), or +Inf past the last one; negative (skew) is 0.
        hist[bisect_left(HISTOGRAM_BOUNDS, seconds)] += 1
        hist[-1] += max(seconds, 0.0)


_ZERO_HISTOGRAM = [0.0] * (len(HISTOGRAM_BOUNDS) + 2)
