"""Per-series time-bucket rings: counters and sketches for the last `retention` seconds.

A series keeps at most retention/width + 1 buckets whatever the event rate, so memory grows
with the number of series (capped elsewhere), never with traffic. A window query sums the
buckets that overlap it, so its edge is exact to one bucket width.
"""

from __future__ import annotations

from collections import deque

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

    def _window(self, window: float, now: float) -> list[Bucket]:
        since = now - window
        return [b for b in self.buckets if b.start + self.width > since and b.start <= now]

    def counts(self, window: float, now: float) -> list[int]:
        total = [0] * len(COUNTERS)
        for b in self._window(window, now):
            for i, n in enumerate(b.counts):
                total[i] += n
        return total

    def sketch(self, measure: int, window: float, now: float) -> Sketch:
        merged = Sketch()
        for b in self._window(window, now):
            s = b.sketches[measure]
            if s is not None:
                merged.merge(s)
        return merged

    def trim(self, now: float) -> None:
        horizon = now - self.retention - self.width
        buckets = self.buckets
        while buckets and buckets[0].start <= horizon:
            buckets.popleft()
