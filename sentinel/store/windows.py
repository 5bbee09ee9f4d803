"""Per-series time-bucket rings: counters and sketches for the last `retention` seconds.

A series keeps at most retention/width + 1 buckets whatever the event rate, so memory grows
with the number of series (capped elsewhere), never with traffic. A window query sums the
buckets that overlap it, so its edge is exact to one bucket width.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from itertools import islice

from sentinel.store.sketch import Sketch

# Counter slots in a bucket, in Celery's event order.
SENT, RECEIVED, STARTED, SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED = range(8)
COUNTERS = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
# Latency measures, each a sketch per bucket.
QUEUE_WAIT, RUNTIME, TOTAL = range(3)
MEASURES = ("queue_wait", "runtime", "total")


class Bucket:
    __slots__ = ("counts", "sketches", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.counts = [0] * len(COUNTERS)
        self.sketches: list[Sketch | None] = [None] * len(MEASURES)


class Ring:
    __slots__ = ("buckets", "retention", "width")

    def __init__(self, width: float, retention: float) -> None:
        self.width = width
        self.retention = retention
        self.buckets: deque[Bucket] = deque()

    def bucket(self, now: float) -> Bucket:
        start = now - (now % self.width)
        buckets = self.buckets
        if buckets:
            last = buckets[-1]
            if last.start == start:
                return last
            if start < last.start:  # clock stepped back: keep counting in the newest bucket
                return last
        bucket = Bucket(start)
        buckets.append(bucket)
        horizon = start - self.retention - self.width
        while buckets[0].start <= horizon:
            buckets.popleft()
        return bucket

    def _span(self, window: float, now: float) -> tuple[int, int]:
        """Indexes [lo, hi) of the buckets overlapping (now - window, now].

        Buckets are sorted by start, so two binary searches replace a scan of the whole ring:
        a tick asks this of every series for every rule.
        """
        buckets = self.buckets
        if not buckets:
            return 0, 0
        width = self.width
        since = now - window
        lo = bisect_right(buckets, since, key=lambda b: b.start + width)
        hi = len(buckets)
        if buckets[-1].start > now:  # queried in the past: newer buckets don't count
            hi = bisect_right(buckets, now, key=_start)
        return lo, hi

    def counts(self, window: float, now: float) -> list[int]:
        lo, hi = self._span(window, now)
        if hi - lo <= 1:
            return list(self.buckets[lo].counts) if hi > lo else [0] * len(COUNTERS)
        return [
            sum(column)
            for column in zip(*[b.counts for b in islice(self.buckets, lo, hi)], strict=True)
        ]

    def sketch(self, measure: int, window: float, now: float) -> Sketch:
        lo, hi = self._span(window, now)
        return Sketch.merged(
            s for b in islice(self.buckets, lo, hi) if (s := b.sketches[measure]) is not None
        )

    def trim(self, now: float) -> None:
        horizon = now - self.retention - self.width
        buckets = self.buckets
        while buckets and buckets[0].start <= horizon:
            buckets.popleft()


def _start(bucket: Bucket) -> float:
    return bucket.start
