"""Which task series may have new window answers since a rule last asked, without visiting the
others: what lets a tick cost O(changed series) rather than O(series).

A series' answer over a window changes for two reasons only: something was written to it, or
one of its buckets left the window. The journal keeps both, as the rings report them:

- `written`: per generation, the series written in it, each once (a ring notes itself on its
  first write of a generation: one compare per write on the event path). A tick closes the
  current generation under the store lock (`snapshot()`), so "written since generation g" is
  exact whichever thread wrote when.
- `opened`: per bucket start, the series that opened a bucket there. Buckets of every series
  start on the same grid, so the series whose bucket left a window between two ticks are
  those listed at the starts that crossed the window's edge in between.

Anything that changes answers without either (a budget drop, a retention change, a test
rewriting a bucket) bumps `epoch`, and every rule evaluates everything once more.
Memory: one reference per (series, bucket) for the retention (counted in window_bytes), and
per generation at most one per series, for the last GENERATIONS generations.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any

# Generations kept: a rule that last looked further back than this evaluates everything (a
# rule is asked every tick; the liveness watch's extra ticks add a few generations between).
GENERATIONS = 64
# Bytes per journal entry (a list slot) for the window budget.
ENTRY_BYTES = 8
# Bucket starts are kept this long after they left every window, so that a rule whose ticks
# are this far apart still learns which buckets left its window since its last (further
# apart, it evaluates everything: left_window says None).
SLACK = 120.0


class Journal:
    def __init__(self, width: float, retention: float = 600.0) -> None:
        self.width = width
        self.keep(retention)
        self.gen = 0
        self.written: dict[int, list[Any]] = {0: []}
        self.opened: dict[float, list[Any]] = {}
        self.forgotten = -math.inf  # the latest bucket start forgotten
        self.epoch = 0

    def snapshot(self) -> int:
        """Close the current generation and return it: everything written up to now is in the
        generations <= it. Call with the store lock held."""
        closed = self.gen
        self.gen += 1
        self.written[self.gen] = []
        if len(self.written) > GENERATIONS:
            del self.written[min(self.written)]
        return closed

    def written_since(self, gen: int) -> set[Any] | None:
        """Series written in generations after `gen` (closed or not); None when the journal no
        longer reaches back that far."""
        if gen + 1 < min(self.written):
            return None
        out: set[Any] = set()
        for g in range(gen + 1, self.gen + 1):
            out.update(self.written[g])
        return out

    def left_window(self, window: float, since: float, now: float) -> set[Any] | None:
        """Series with a bucket that was in (since - window, since] and is no longer in
        (now - window, now]: a bucket starting at s overlaps the window while
        s + width > now - window (windows.Ring._span). None when some of those starts were
        forgotten already."""
        lo, hi = since - window - self.width, now - window - self.width
        out: set[Any] = set()
        if hi <= lo:
            return out
        if lo < self.forgotten:
            return None
        starts = sorted(self.opened)
        for start in starts[bisect_right(starts, lo) : bisect_right(starts, hi)]:
            out.update(self.opened[start])
        return out

    def keep(self, retention: float) -> None:
        """Bucket starts are kept for the rings' retention, two buckets and SLACK."""
        self.horizon = retention + 2 * self.width + SLACK

    def note_open(self, start: float, series: Any) -> None:
        opened = self.opened.get(start)
        if opened is None:
            # A new start, once per bucket width: the old ones go here too, so the journal
            # stays bounded when nothing prunes the store (`sentinel record`).
            self.forget_before(start - self.horizon)
            opened = self.opened[start] = []
        opened.append(series)

    def forget_before(self, start: float) -> None:
        """Drop the bucket starts before `start` (past every window: they change nothing)."""
        for s in [s for s in self.opened if s < start]:
            del self.opened[s]
            self.forgotten = max(self.forgotten, s)

    def invalidate(self) -> None:
        """Every answer may have changed: every rule evaluates everything at its next tick."""
        self.epoch += 1

    def nbytes(self) -> int:
        entries = sum(map(len, self.opened.values())) + sum(map(len, self.written.values()))
        return ENTRY_BYTES * entries
