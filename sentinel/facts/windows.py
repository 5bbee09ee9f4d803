"""Per-series time-bucket rings: counters and latency bins for the last `retention` seconds.

A series keeps at most retention/width + 1 buckets whatever the event rate, so memory grows
with the number of series (capped elsewhere), never with traffic. A window query sums the
buckets that overlap it, so its edge is exact to one bucket width.

The ring is columnar: a few flat arrays per series, no object per bucket. A bucket costs its
start (8 bytes), 8 counters (4 bytes each) and their running sums (8 bytes each) and, per
latency measure, an offset, a zero count and a max (16 bytes), plus 4 bytes per distinct
latency bin observed in it. A bin is one unsigned 32-bit int, (sketch key + KEY_BIAS) << 13 |
count, kept sorted within its bucket: below 2**30, so sorting a window's bins is a sort of
one-digit ints, which CPython compares ~3x faster than the 64-bit ints bins were before; a count
past 8,191 in one bucket is spread over several bins of its key. The bins are exactly those a
sketch.Sketch of the bucket's observations would hold (same keys, same folding past MAX_BINS).
Observations only ever land in the newest bucket, which is always the tail of each array.

Window answers are kept. Each answer is kept with the ring's write version and the time the
window's oldest bucket leaves it, so a series nothing happened to is answered with a lookup.
Every bucket but the newest is frozen, so a (measure, window) with many bins keeps the merged
bins of its frozen buckets (one wide int per distinct key, sorted: a DDSketch's bins are
subtractable) and a query adds or subtracts only the buckets that entered or left the window
since the last one, then reads the newest bucket live; small windows are sorted afresh when they
changed (in C that is cheaper than any Python-level update: bench/README.md). Counters keep
running sums per bucket (each counter's total before the bucket), so a changed window's
counters are two rows subtracted plus the newest bucket, not a re-sum of up to 61 buckets.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from operator import add, sub
from typing import Any

from sentinel.facts.journal import Journal
from sentinel.facts.sketch import GAMMA, MAX_BINS, MIN_VALUE, Sketch

# Counter slots in a bucket, in Celery's event order.
SENT, RECEIVED, STARTED, SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED = range(8)
COUNTERS = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
# Latency measures, each a sketch's bins per bucket.
QUEUE_WAIT, RUNTIME, TOTAL = range(3)
MEASURES = ("queue_wait", "runtime", "total")

NC = len(COUNTERS)
NM = len(MEASURES)
# Sketch keys run from ~-1,400 (MIN_VALUE) to ~71,000 (the largest float): biased they fit in
# 17 bits, and a bin with a 13-bit count stays below 2**30 (see the module doc).
KEY_BIAS = 1 << 11
COUNT_BITS = 13
COUNT_MASK = (1 << COUNT_BITS) - 1
# The kept merged bins of a window (one per key, counts of a whole window): the same biased key
# above a 32-bit count, in 64-bit ints; few series have them, and they are updated, not sorted.
WIDE_BITS = 32
WIDE_MASK = (1 << WIDE_BITS) - 1
assert math.ceil(math.log(MIN_VALUE) / math.log(GAMMA)) + KEY_BIAS > 0
assert math.ceil(math.log(sys.float_info.max) / math.log(GAMMA)) + KEY_BIAS < 1 << 17
# A bucket's fixed cost in the arrays (start, counters and their sums, per measure
# offset/observed/zeros/max),
# and a bin's in the open bucket's dict (entry plus boxed key), for budgeting.
BUCKET_BYTES = 8 + (4 + 8) * NC + (4 + 4 + 4 + 8) * NM
TAIL_BIN_BYTES = 64
_ZERO_COUNTS = array("I", [0] * NC)
_ZERO_SUMS = array("Q", [0] * NC)
_ZERO_MEASURES = array("I", [0] * NM)
_ZERO_MAXES = array("d", [0.0] * NM)
# What one kept window entry costs beyond its packed bins (the tuple or list, its numbers, the
# dict slot), for budgeting.
MEMO_BYTES = 200
# False makes every query a re-sum of the window's buckets, as before the answers were kept:
# the benchmarks' same-run baseline, and the reference the tests compare against.
INCREMENTAL = True
# From this many packed bins in a window's frozen buckets, its merged bins are kept and updated
# (below it a C sort of the window's bins is cheaper than Python-level updates: measured with
# 2 vs 20 observations per bucket in bench/README.md).
KEEP_BINS = 256


def decode(bin_: int) -> tuple[int, int]:
    return (bin_ >> COUNT_BITS) - KEY_BIAS, bin_ & COUNT_MASK


def packed(bins: dict[int, int]) -> list[int]:
    """A sketch's bins as packed bins, unsorted; a count past COUNT_MASK takes several."""
    out = []
    for key, n in bins.items():
        base = (key + KEY_BIAS) << COUNT_BITS
        while n > COUNT_MASK:
            out.append(base | COUNT_MASK)
            n -= COUNT_MASK
        out.append(base | n)
    return out


class Ring:
    __slots__ = (
        "bins",
        "counters",
        "journal",
        "kept",
        "maxes",
        "memo",
        "newest",
        "noted",
        "observed",
        "offsets",
        "owner",
        "retention",
        "starts",
        "sums",
        "tail",
        "version",
        "width",
        "zeros",
    )

    def __init__(self, width: float, retention: float) -> None:
        self.width = width
        self.retention = retention
        self.starts = array("d")  # bucket starts, ascending
        self.newest = -math.inf  # starts[-1], or -inf when empty
        self.counters = array("I")  # NC per bucket
        # NC per bucket: each counter's total over every bucket before this one since the ring
        # began (never rebased: only differences are read), so a window's counters are two
        # rows subtracted, plus the newest bucket live, whatever the number of buckets.
        self.sums = array("Q")
        self.offsets = array("I")  # NM per bucket: where the bucket's bins start in bins[m]
        self.observed = array("I")  # NM per bucket: observations
        self.zeros = array("I")  # NM per bucket: observations <= MIN_VALUE
        self.maxes = array("d")  # NM per bucket: the largest observation
        self.bins = (array("I"), array("I"), array("I"))  # per measure, see the module doc
        # The newest bucket's observations while it is open, a Sketch per measure (adding to a
        # dict is ~4x cheaper than inserting into a sorted array): sealed into the arrays
        # when the next bucket opens or trim() finds the bucket finished.
        self.tail: list[Sketch | None] | None = None
        # Bumped by every write (slot() precedes each one): a kept answer with the same version
        # saw the same data.
        self.version = 0
        # Kept window answers, see the module doc: ("c", window) and ("a", measure, window,
        # q) -> (version, now, start of the window's oldest bucket, answer).
        self.memo: dict[tuple[Any, ...], Any] = {}
        # Kept merged bins of windows with many: (measure, window) -> [oldest start, newest
        # start, merged bins, observations, zeros] of the window's frozen buckets. Apart from
        # the answers so that expiry and budgeting visit only these (few series have them).
        self.kept: dict[tuple[int, float], list[Any]] = {}
        # The store's journal.Journal, told of this ring's writes and bucket openings on behalf
        # of `owner` (its TaskSeries), and the generation it was last noted in. None: alone.
        self.journal: Journal | None = None
        self.owner: Any = None
        self.noted = -1

    def join(self, journal: Journal, owner: Any) -> None:
        self.journal = journal
        self.owner = owner

    # -- writing --------------------------------------------------------------------------

    def slot(self, now: float) -> int:
        """Index of the newest bucket's counters (start one for `now` if needed): the counter
        for event slot k is counters[slot(now) + k]."""
        self.version += 1
        journal = self.journal
        if journal is not None and self.noted != journal.gen:  # once per generation
            self.noted = journal.gen
            journal.written[journal.gen].append(self.owner)
        start = now - (now % self.width)
        if start <= self.newest:  # the newest bucket, or the clock stepped back: count there
            return len(self.counters) - NC
        self._open(start)
        return len(self.counters) - NC

    def _open(self, start: float) -> None:
        if self.tail is not None:
            self._seal()
        starts = self.starts
        if starts:  # the newest bucket is frozen from now on: its counters join the sums
            self.sums.extend(array("Q", map(add, self.sums[-NC:], self.counters[-NC:])))
        else:
            self.sums.extend(_ZERO_SUMS)
        starts.append(start)
        self.newest = start
        if self.journal is not None:
            self.journal.note_open(start, self.owner)
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
        journal = self.journal
        if journal is not None and self.noted != journal.gen:
            # A change like a write for a window longer than the retention (a reload that
            # shortened it): its rules evaluate this series again.
            self.noted = journal.gen
            journal.written[journal.gen].append(self.owner)
        offsets = self.offsets
        if k >= len(self.starts):
            self.memo.clear()  # a bucket with a kept start may come back with other data
            self.kept.clear()
            self.tail = None
            self.newest = -math.inf
            del self.starts[:], self.counters[:], self.observed[:], self.zeros[:], self.sums[:]
            del self.maxes[:], offsets[:]
            for b in self.bins:
                del b[:]
            return
        if self.kept:
            self._expire(k)
        del self.starts[:k]
        del self.counters[: k * NC]
        del self.sums[: k * NC]
        del self.observed[: k * NM]
        del self.zeros[: k * NM]
        del self.maxes[: k * NM]
        cut = offsets[k * NM : k * NM + NM]
        del offsets[: k * NM]
        for m in range(NM):
            if cut[m]:
                del self.bins[m][: cut[m]]
                offsets[m::NM] = array("I", [o - cut[m] for o in offsets[m::NM]])

    def _expire(self, k: int) -> None:
        """Before the k oldest buckets go, take them out of the kept window state that still
        holds them (a window as long as the retention loses its oldest bucket this way)."""
        starts = self.starts
        for key, m in list(self.kept.items()):
            lo_at, edge_at = m[0], m[1]
            if lo_at > starts[k - 1]:
                continue  # holds none of them
            i0, e = self._index(lo_at), self._index(edge_at)
            if i0 is None or e is None or k > e:
                del self.kept[key]
                continue
            measure = key[0]
            a, b = self.offsets[i0 * NM + measure], self.offsets[k * NM + measure]
            if _merge(m[2], self.bins[measure][a:b], -1) is None:
                del self.kept[key]
                continue
            m[3] -= sum(self.observed[i0 * NM + measure : k * NM : NM])
            m[4] -= sum(self.zeros[i0 * NM + measure : k * NM : NM])
            m[0] = starts[k]

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
                sketch.bins[key] = sketch.bins.get(key, 0) + n  # a big count spans bins
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
                self.bins[m].extend(sorted(packed(sketch.bins)))

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
        # The first bucket with start + width > since: found on the starts alone (no key
        # function called per probe), then moved by the one bucket that rounding may put on
        # the other side of the edge, so the test stays exactly `start + width > since`.
        hi = len(starts)
        lo = bisect_right(starts, since - width)
        while lo > 0 and starts[lo - 1] + width > since:
            lo -= 1
        while lo < hi and starts[lo] + width <= since:
            lo += 1
        if starts[-1] > now:  # queried in the past: newer buckets don't count
            hi = bisect_right(starts, now)
        return lo, hi

    def counts(self, window: float, now: float) -> list[int]:
        """Counters over the window; the list may be shared: read it, never change it."""
        starts = self.starts
        if not INCREMENTAL or not starts or starts[-1] > now:
            return self._counts_full(window, now)
        key = ("c", window)
        m = self.memo.get(key)
        # Still valid while nothing was written and the oldest bucket is still in the window
        # (the same test as _span's, so the two never disagree at the edge).
        if (
            m is not None
            and m[0] == self.version
            and m[1] <= now
            and m[2] + self.width > now - window
        ):
            counts: list[int] = m[3]
            return counts
        # A changed series is answered from the running sums: two rows subtracted and the
        # newest bucket added, the same integers a re-sum of the window's buckets gives.
        lo, hi = self._span(window, now)
        answer = self._counts_sums(lo, hi)
        oldest = starts[lo] if hi > lo else math.inf
        # A tuple of atomic values: the cyclic GC stops tracking it, so 10,000 series' kept
        # answers add nothing to its full collections.
        self.memo[key] = (self.version, now, oldest, answer)
        return answer

    def _index(self, start: float) -> int | None:
        """Index of the bucket that starts at `start`, or None if it is no longer here."""
        i = bisect_left(self.starts, start)
        return i if i < len(self.starts) and self.starts[i] == start else None

    def quantile(
        self, measure: int, window: float, now: float, q: float
    ) -> tuple[float | None, int]:
        """(value at quantile q, observations) of one measure over the window: the answer
        Sketch.merged(bucket_sketches(...)).quantile(q) gives, read from the kept bins."""
        starts = self.starts
        if not INCREMENTAL or not starts or starts[-1] > now:
            return self._quantile_full(measure, window, now, q)
        akey = ("a", measure, window, q)
        kept = self.memo.get(akey)
        if (
            kept is not None
            and kept[0] == self.version
            and kept[1] <= now
            and kept[2] + self.width > now - window
        ):
            kept_answer: tuple[float | None, int] = kept[3]
            return kept_answer
        lo, hi = self._span(window, now)
        if hi <= lo:
            answer: tuple[float | None, int] = (None, 0)
            self.memo[akey] = (self.version, now, math.inf, answer)
            return answer
        last = hi - 1
        frozen = self.offsets[last * NM + measure] - self.offsets[lo * NM + measure]
        state = None
        if frozen < KEEP_BINS:
            # Few bins: sorting them afresh (in C) is cheaper than updating merged bins in
            # Python, and keeps no copy of them.
            if self.kept:
                self.kept.pop((measure, window), None)
        else:
            state = self._frozen_bins(measure, window, lo, last)
        if state is None:
            answer = self._quantile_full(measure, window, now, q, (lo, hi))
        else:
            work, count, zeros = state
            # The newest bucket, read live: its sealed bins and the open sketch.
            i = last * NM + measure
            bins = self.bins[measure]
            newest = bins[self.offsets[i] :]
            count += self.observed[i]
            zeros += self.zeros[i]
            top = max(self.maxes[lo * NM + measure : hi * NM : NM])
            if self.tail is not None and (sketch := self.tail[measure]) is not None:
                count += sketch.count
                zeros += sketch.zeros
                top = max(top, sketch.max)
                newest.extend(packed(sketch.bins))
            merged: array[int] | None = work
            if newest:  # on a copy: the kept bins hold frozen buckets only
                merged = _merge(work[:], newest, 1)
            if merged is None or len(merged) > MAX_BINS:  # a merge would fold: let it decide
                answer = self._quantile_full(measure, window, now, q, (lo, hi))
            else:
                answer = (_quantile(merged, count, zeros, top, q, WIDE_BITS), count)
        self.memo[akey] = (self.version, now, starts[lo], answer)
        return answer

    def _frozen_bins(
        self, measure: int, window: float, lo: int, last: int
    ) -> tuple[array[int], int, int] | None:
        """The merged bins, observations and zeros of buckets [lo, last), kept up to date by
        adding the buckets frozen and subtracting those gone since the last query; None when a
        bin's window count would not fit its 32 bits."""
        key = (measure, window)
        m = self.kept.get(key)
        bins = self.bins[measure]
        offsets = self.offsets
        if m is not None:
            i0, e = self._index(m[0]), self._index(m[1])
            if i0 is not None and e is not None and i0 <= lo <= e:
                work: array[int] = m[2]
                count: int = m[3]
                zeros: int = m[4]
                ok = True
                if lo > i0:
                    a, b = offsets[i0 * NM + measure], offsets[lo * NM + measure]
                    ok = _merge(work, bins[a:b], -1) is not None
                    count -= sum(self.observed[i0 * NM + measure : lo * NM : NM])
                    zeros -= sum(self.zeros[i0 * NM + measure : lo * NM : NM])
                if ok and last > e:
                    a, b = offsets[e * NM + measure], offsets[last * NM + measure]
                    ok = _merge(work, bins[a:b], 1) is not None
                    count += sum(self.observed[e * NM + measure : last * NM : NM])
                    zeros += sum(self.zeros[e * NM + measure : last * NM : NM])
                if ok:
                    m[0], m[1], m[3], m[4] = self.starts[lo], self.starts[last], count, zeros
                    return work, count, zeros
        a, b = offsets[lo * NM + measure], offsets[last * NM + measure]
        work = array("Q")
        if _merge(work, bins[a:b], 1) is None:
            self.kept.pop(key, None)
            return None
        count = sum(self.observed[lo * NM + measure : last * NM : NM])
        zeros = sum(self.zeros[lo * NM + measure : last * NM : NM])
        self.kept[key] = [self.starts[lo], self.starts[last], work, count, zeros]
        return work, count, zeros

    def _quantile_full(
        self, measure: int, window: float, now: float, q: float, span: tuple[int, int] | None = None
    ) -> tuple[float | None, int]:
        """The same answer from every bucket of the window, sorted afresh (no kept state)."""
        bins, count, zeros, top = self.window_bins(measure, window, now, span)
        if len(bins) > MAX_BINS:
            return Sketch.merged(self.bucket_sketches(measure, window, now)).quantile(q), count
        return _quantile(sorted(bins), count, zeros, top, q, COUNT_BITS), count

    def _counts_sums(self, lo: int, hi: int) -> list[int]:
        """Counters of buckets [lo, hi) from the running sums (hi - lo buckets, any number)."""
        if hi - lo <= 1:
            return self.counters[lo * NC : lo * NC + NC].tolist() if hi > lo else [0] * NC
        sums = self.sums
        base = sums[lo * NC : lo * NC + NC]
        if hi < len(self.starts):
            return list(map(sub, sums[hi * NC : hi * NC + NC], base))
        last = (hi - 1) * NC  # the newest bucket is not in the sums yet: read it live
        # Two C-level maps, no Python function called per counter.
        newest = map(add, sums[last : last + NC], self.counters[last : last + NC])
        return list(map(sub, newest, base))

    def _resum(self) -> None:
        """The running sums afresh (after a bucket other than the newest was rewritten)."""
        counters, total = self.counters, [0] * NC
        sums = array("Q")
        for i in range(len(self.starts)):
            sums.extend(total)
            total = [t + c for t, c in zip(total, counters[i * NC : i * NC + NC], strict=True)]
        self.sums = sums

    def _counts_full(
        self, window: float, now: float, span: tuple[int, int] | None = None
    ) -> list[int]:
        lo, hi = span or self._span(window, now)
        if hi - lo <= 1:
            return self.counters[lo * NC : lo * NC + NC].tolist() if hi > lo else [0] * NC
        part = self.counters[lo * NC : hi * NC]
        return [sum(part[k::NC]) for k in range(NC)]

    def window_bins(
        self, measure: int, window: float, now: float, span: tuple[int, int] | None = None
    ) -> tuple[array[int], int, int, float]:
        """(the window's bins for the measure, bucket by bucket; observations, zeros, max)."""
        lo, hi = span or self._span(window, now)
        if hi <= lo:
            return array("I"), 0, 0, 0.0
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
                part.extend(packed(sketch.bins))
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
                s.bins[key] = s.bins.get(key, 0) + k
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
        """Roughly what the ring's data costs (sealed buckets exactly, the open one and the kept
        window answers estimated)."""
        n = len(self.starts) * BUCKET_BYTES + 4 * sum(len(b) for b in self.bins)
        if self.tail is not None:
            n += sum(TAIL_BIN_BYTES * len(s.bins) + 80 for s in self.tail if s is not None)
        n += MEMO_BYTES * (len(self.memo) + len(self.kept))
        for m in self.kept.values():
            n += 8 * len(m[2])
        return n

    def drop_until(self, cutoff: float) -> int:
        """Forget the buckets that start at or before cutoff; how many were dropped."""
        k = bisect_right(self.starts, cutoff)
        if k:
            self.memo.clear()  # over budget: the kept bins go too, and are rebuilt when asked
            self.kept.clear()
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


def _merge(into: array[int], bins: Sequence[int], sign: int) -> array[int] | None:
    """Add (sign 1) or subtract (sign -1) packed bins into a sorted array of wide bins (one
    entry per key); None (the array then unusable) if a count would not fit 32 bits."""
    for bin_ in bins:
        n = bin_ & COUNT_MASK
        edge = (bin_ >> COUNT_BITS) << WIDE_BITS  # the key alone: sorts before its wide bin
        j = bisect_left(into, edge)
        if j < len(into) and into[j] - edge <= WIDE_MASK:  # the key is there
            if sign > 0:
                if (into[j] & WIDE_MASK) + n > WIDE_MASK:
                    return None
                into[j] += n
            elif into[j] - edge == n:
                del into[j]
            else:
                into[j] -= n
        elif sign > 0:
            into.insert(j, edge | n)
        else:
            return None  # subtracting a bin that is not there: the kept state is wrong
    return into


def _quantile(
    work: Sequence[int], count: int, zeros: int, top: float, q: float, bits: int
) -> float | None:
    """Sketch.quantile over sorted bins (a key may repeat) whose count is their low `bits`
    (COUNT_BITS for packed bins, WIDE_BITS for kept ones), walked from the top: high quantiles
    are what rules ask."""
    if count == 0:
        return None
    rank = q * (count - 1)
    if rank < zeros:
        return 0.0
    # The smallest key whose cumulative count exceeds rank: the cumulative count at a key is
    # everything minus what lies strictly above it.
    mask = (1 << bits) - 1
    best = last = None
    above = 0
    for bin_ in reversed(work):
        key = bin_ >> bits
        if key != last:
            if count - above <= rank:
                break
            best = last = key
        above += bin_ & mask
    if best is None:
        return top
    return min(2.0 * GAMMA ** (best - KEY_BIAS) / (GAMMA + 1.0), top)


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
        self.ring._resum()
        self.ring.memo.clear()  # any bucket may change here, not only the newest
        self.ring.kept.clear()
        self.ring.version += 1
        if self.ring.journal is not None:
            self.ring.journal.invalidate()

    def __len__(self) -> int:
        return NC

    def __iter__(self) -> Iterator[int]:
        base = self._base()
        return iter(self.ring.counters[base : base + NC])
