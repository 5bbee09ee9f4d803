"""Per-series time-bucket rings: counters and latency bins for the last `retention` seconds.

A series keeps at most retention/width + 1 buckets whatever the event rate, so memory grows
with the number of series (capped elsewhere), never with traffic. A window query sums the
buckets that overlap it, so its edge is exact to one bucket width.

The ring is columnar: a few flat arrays per series, no object per bucket. A bucket costs its
start (8 bytes), 8 counters (4 bytes each) and, per latency measure, an offset, a zero count
and a max (16 bytes), plus 8 bytes per distinct latency bin observed in it. A bin is one
unsigned 64-bit int, (sketch key + KEY_BIAS) << 32 | count, kept sorted within its bucket:
sorting a window's bins is a sort of plain ints, and the bins are exactly those a
sketch.Sketch of the bucket's observations would hold (same keys, same folding past MAX_BINS).
Observations only ever land in the newest bucket, which is always the tail of each array.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from sentinel.facts.sketch import Sketch

# Counter slots in a bucket, in Celery's event order.
SENT, RECEIVED, STARTED, SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED = range(8)
COUNTERS = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
# Latency measures, each a sketch's bins per bucket.
QUEUE_WAIT, RUNTIME, TOTAL = range(3)
MEASURES = ("queue_wait", "runtime", "total")

NC = len(COUNTERS)
NM = len(MEASURES)
KEY_BIAS = 1 << 31  # sketch keys are within +-71,000 (float range): biased, they are >= 0
COUNT_MASK = (1 << 32) - 1
_ONE_KEY = 1 << 32
# A bucket's fixed cost in the arrays (start, counters, per measure offset/observed/zeros/max),
# and a bin's in the open bucket's dict (entry plus boxed key), for budgeting.
BUCKET_BYTES = 8 + 4 * NC + (4 + 4 + 4 + 8) * NM
TAIL_BIN_BYTES = 64
_ZERO_COUNTS = array("I", [0] * NC)
_ZERO_MEASURES = array("I", [0] * NM)
_ZERO_MAXES = array("d", [0.0] * NM)


def encode(key: int, n: int) -> int:
    return (key + KEY_BIAS) << 32 | n


def decode(bin_: int) -> tuple[int, int]:
    return (bin_ >> 32) - KEY_BIAS, bin_ & COUNT_MASK


class Ring:
    __slots__ = (
        "bins",
        "counters",
        "maxes",
        "newest",
        "observed",
        "offsets",
        "retention",
        "starts",
        "tail",
        "width",
        "zeros",
    )

    def __init__(self, width: float, retention: float) -> None:
        self.width = width
        self.retention = retention
        self.starts = array("d")  # bucket starts, ascending
        self.newest = -math.inf  # starts[-1], or -inf when empty
        self.counters = array("I")  # NC per bucket
        self.offsets = array("I")  # NM per bucket: where the bucket's bins start in bins[m]
        self.observed = array("I")  # NM per bucket: observations
        self.zeros = array("I")  # NM per bucket: observations <= MIN_VALUE
        self.maxes = array("d")  # NM per bucket: the largest observation
        self.bins = (array("Q"), array("Q"), array("Q"))  # per measure, see the module doc
        # The newest bucket's observations while it is open, a Sketch per measure (adding to a
        # dict is ~4x cheaper than inserting into a sorted array): sealed into the arrays
        # when the next bucket opens or trim() finds the bucket finished.
        self.tail: list[Sketch | None] | None = None

    # -- writing --------------------------------------------------------------------------

    def slot(self, now: float) -> int:
        """Index of the newest bucket's counters (start one for `now` if needed): the counter
        for event slot k is counters[slot(now) + k]."""
        start = now - (now % self.width)
        if start <= self.newest:  # the newest bucket, or the clock stepped back: count there
            return len(self.counters) - NC
        self._open(start)
        return len(self.counters) - NC

    def _open(self, start: float) -> None:
        if self.tail is not None:
            self._seal()
        starts = self.starts
        starts.append(start)
        self.newest = start
        self.counters.extend(_ZERO_COUNTS)
        self.observed.extend(_ZERO_MEASURES)
        self.zeros.extend(_ZERO_MEASURES)
        self.maxes.extend(_ZERO_MAXES)
        bins = self.bins
        self.offsets.extend(array("I", (len(bins[0]), len(bins[1]), len(bins[2]))))
        horizon = start - self.retention - self.width
        if starts[0] <= horizon:
            self._drop(bisect_right(starts, horizon))

    def _drop(self, k: int) -> None:
        """Forget the k oldest buckets."""
        if k <= 0:
            return
        offsets = self.offsets
        if k >= len(self.starts):
            self.tail = None
            self.newest = -math.inf
            del self.starts[:], self.counters[:], self.observed[:], self.zeros[:]
            del self.maxes[:], offsets[:]
            for b in self.bins:
                del b[:]
            return
        del self.starts[:k]
        del self.counters[: k * NC]
        del self.observed[: k * NM]
        del self.zeros[: k * NM]
        del self.maxes[: k * NM]
        cut = offsets[k * NM : k * NM + NM]
        del offsets[: k * NM]
        for m in range(NM):
            if cut[m]:
                del self.bins[m][: cut[m]]
                offsets[m::NM] = array("I", [o - cut[m] for o in offsets[m::NM]])

    def observe(self, measure: int, value: float, now: float) -> None:
        """Add one latency observation to the bucket for `now`."""
        self.slot(now)
        self.add(measure, value)

    def add(self, measure: int, value: float) -> None:
        """Add one latency observation to the newest bucket (there must be one)."""
        tail = self.tail
        if tail is None:
            tail = self.tail = [None] * NM
        sketch = tail[measure]
        if sketch is None:
            sketch = tail[measure] = self._reopen(measure)
        sketch.add(value)

    def _reopen(self, measure: int) -> Sketch:
        """A Sketch for the newest bucket's measure, holding what was sealed of it already
        (a write after a seal only happens when the clock stepped back)."""
        sketch = Sketch()
        i = len(self.observed) - NM + measure
        if self.observed[i]:
            bins = self.bins[measure]
            lo = self.offsets[i]
            for bin_ in bins[lo:]:
                key, n = decode(bin_)
                sketch.bins[key] = n
            del bins[lo:]
            sketch.count, sketch.zeros, sketch.max = self.observed[i], self.zeros[i], self.maxes[i]
            self.observed[i] = self.zeros[i] = 0
            self.maxes[i] = 0.0
        return sketch

    def _seal(self) -> None:
        """Move the newest bucket's sketches into the arrays."""
        tail, self.tail = self.tail, None
        if tail is None:
            return
        base = len(self.observed) - NM
        for m, sketch in enumerate(tail):
            if sketch is not None:
                i = base + m
                self.observed[i], self.zeros[i], self.maxes[i] = (
                    sketch.count,
                    sketch.zeros,
                    sketch.max,
                )
                self.bins[m].extend(sorted(encode(k, n) for k, n in sketch.bins.items()))

    # -- reading --------------------------------------------------------------------------

    def _span(self, window: float, now: float) -> tuple[int, int]:
        """Indexes [lo, hi) of the buckets overlapping (now - window, now].

        Starts are sorted, so two binary searches replace a scan of the whole ring: a tick asks
        this of every series for every rule.
        """
        starts = self.starts
        if not starts:
            return 0, 0
        width = self.width
        since = now - window
        lo = bisect_right(starts, since, key=lambda s: s + width)
        hi = len(starts)
        if starts[-1] > now:  # queried in the past: newer buckets don't count
            hi = bisect_right(starts, now)
        return lo, hi

    def counts(self, window: float, now: float) -> list[int]:
        lo, hi = self._span(window, now)
        if hi - lo <= 1:
            return self.counters[lo * NC : lo * NC + NC].tolist() if hi > lo else [0] * NC
        part = self.counters[lo * NC : hi * NC]
        return [sum(part[k::NC]) for k in range(NC)]

    def window_bins(
        self, measure: int, window: float, now: float
    ) -> tuple[array[int], int, int, float]:
        """(the window's bins for the measure, bucket by bucket; observations, zeros, max)."""
        lo, hi = self._span(window, now)
        if hi <= lo:
            return array("Q"), 0, 0, 0.0
        bins = self.bins[measure]
        offsets = self.offsets
        a = offsets[lo * NM + measure]
        b = offsets[hi * NM + measure] if hi < len(self.starts) else len(bins)
        observed = sum(self.observed[lo * NM + measure : hi * NM : NM])
        zeros = sum(self.zeros[lo * NM + measure : hi * NM : NM])
        top = max(self.maxes[lo * NM + measure : hi * NM : NM])
        part = bins[a:b]
        if hi == len(self.starts) and self.tail is not None:
            sketch = self.tail[measure]
            if sketch is not None:
                observed += sketch.count
                zeros += sketch.zeros
                top = max(top, sketch.max)
                part.extend([encode(k, n) for k, n in sketch.bins.items()])
        return part, observed, zeros, top

    def bucket_sketches(self, measure: int, window: float, now: float) -> Iterator[Sketch]:
        """The window's buckets as one Sketch each (buckets without observations skipped)."""
        lo, hi = self._span(window, now)
        bins = self.bins[measure]
        n = len(self.starts)
        for i in range(lo, hi):
            if i == n - 1 and self.tail is not None and self.tail[measure] is not None:
                yield self.tail[measure]  # type: ignore[misc]
                continue
            j = i * NM + measure
            a = self.offsets[j]
            b = self.offsets[j + NM] if i + 1 < n else len(bins)
            if not self.observed[j]:
                continue
            s = Sketch()
            s.count, s.zeros, s.max = self.observed[j], self.zeros[j], self.maxes[j]
            for bin_ in bins[a:b]:
                key, k = decode(bin_)
                s.bins[key] = k
            s.sum = math.nan  # not kept per bucket
            yield s

    def sketch(self, measure: int, window: float, now: float) -> Sketch:
        """The window's observations of one measure merged into a new Sketch (no sum)."""
        return Sketch.merged(self.bucket_sketches(measure, window, now))

    def trim(self, now: float) -> None:
        """Forget buckets past retention; seal the newest one if it is finished."""
        horizon = now - self.retention - self.width
        starts = self.starts
        if starts and starts[0] <= horizon:
            self._drop(bisect_right(starts, horizon))
        if self.tail is not None and starts and starts[-1] + self.width <= now:
            self._seal()

    def nbytes(self) -> int:
        """Roughly what the ring's data costs (sealed buckets exactly, the open one estimated)."""
        n = len(self.starts) * BUCKET_BYTES + 8 * sum(len(b) for b in self.bins)
        if self.tail is not None:
            n += sum(TAIL_BIN_BYTES * len(s.bins) + 80 for s in self.tail if s is not None)
        return n

    def drop_until(self, cutoff: float) -> int:
        """Forget the buckets that start at or before cutoff; how many were dropped."""
        k = bisect_right(self.starts, cutoff)
        self._drop(k)
        return k

    # -- compatibility: one bucket at a time ------------------------------------------------

    def bucket(self, now: float) -> Bucket:
        """A view of the newest bucket (started for `now` if needed); slow, for tools/tests."""
        self.slot(now)
        return Bucket(self, self.starts[-1])

    @property
    def buckets(self) -> list[Bucket]:
        return [Bucket(self, s) for s in self.starts]

    def __len__(self) -> int:
        return len(self.starts)


class Bucket:
    """A view of one bucket of a ring: its start and its counters (`counts[slot] += n`)."""

    __slots__ = ("counts", "ring", "start")

    def __init__(self, ring: Ring, start: float) -> None:
        self.ring = ring
        self.start = start
        self.counts = _Counts(ring, start)


class _Counts:
    __slots__ = ("ring", "start")

    def __init__(self, ring: Ring, start: float) -> None:
        self.ring = ring
        self.start = start

    def _base(self) -> int:
        i = bisect_left(self.ring.starts, self.start)
        if i == len(self.ring.starts) or self.ring.starts[i] != self.start:
            raise LookupError("bucket no longer in the ring")
        return i * NC

    def __getitem__(self, slot: int) -> int:
        return self.ring.counters[self._base() + slot]

    def __setitem__(self, slot: int, value: int) -> None:
        self.ring.counters[self._base() + slot] = value

    def __len__(self) -> int:
        return NC

    def __iter__(self) -> Iterator[int]:
        base = self._base()
        return iter(self.ring.counters[base : base + NC])
