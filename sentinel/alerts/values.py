"""The value history: for each alert label set, the value and verdict of its last N evaluations,
so the status page can draw a rule's value against its threshold and say how often the rule
held. Bounded twice: `points` slots per series and at most `max_series` series (a label set
past the cap is counted in `dropped`, not kept); a series not evaluated for `points` ticks is
forgotten. It lives as long as the process, so a reload (new thresholds) keeps it.

Slots are shared: one ring of tick times, and per series a ring of float32 values and one
verdict byte per tick, indexed by the same slot (5 bytes a point, ~1.2 KiB a series at 240
points). A series that missed ticks has those slots marked "no sample".

A per-series rule (rules/incremental.py) re-evaluates only the series whose answers may have
changed, and keeps the other samples as they were: its tick arrives as a SeriesPart, of which
only the changed samples are written. The others are carried: their last point repeats for
every tick their rule's run of samples goes on, filled in when the series is next written or
read. A run ends when its rule has no SeriesPart in a tick (failed, removed, evaluated in full)
or starts its samples afresh (reloaded, names forgotten); its series then stop being carried.
What the page reads is the same as if every sample had been written every tick.
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.model import Labels, Sample

# One byte per point: what the rule said at that evaluation.
NO_SAMPLE, UNKNOWN, INACTIVE, ACTIVE = range(4)
_NAN = float("nan")

# (rule, labels, value, threshold, active): one sample as the plain path records it.
Entry = tuple[str, Labels, float | None, float | None, bool | None]


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


class SeriesSource(Protocol):
    """What keeps a per-series rule's samples from one tick to the next (SeriesSamples)."""

    @property
    def samples(self) -> Mapping[Any, Sample]:
        """Every sample by its series, in the store's order; only ever added to in a run."""
        ...

    @property
    def updates(self) -> int:
        """Ticks it has been updated."""
        ...

    @property
    def restarted(self) -> int:
        """The update at which `samples` were last started afresh (all of them new)."""
        ...


@dataclass(frozen=True, slots=True)
class SeriesPart:
    """One per-series rule's samples of a tick: `source.samples` as of update `updates`, of
    which only `changed` (in order) may differ from the update before."""

    rule: str
    source: SeriesSource
    updates: int
    changed: Sequence[Any]
    labels: Callable[[Mapping[str, str]], Labels]  # a sample's label set, from its labels
    snapshot: Sequence[Sample]  # the samples as they were at the tick, for the plain path

    def entries(self) -> Iterable[Entry]:
        labels, rule = self.labels, self.rule
        for s in self.snapshot:
            yield rule, labels(s.labels), s.value, s.threshold, s.active


class _Run:
    """A per-series rule's run of samples as the history follows it: which of its series have a
    ring (`rings`) and which were past the cap (`unrung`). Every ring whose `run` it is repeats
    its last point through `tick`; once ended, `tick` stays where the run stopped."""

    __slots__ = ("live", "rings", "rule", "source", "tick", "unrung", "updates")

    def __init__(self, rule: str, source: SeriesSource) -> None:
        self.rule, self.source = rule, source
        self.rings: dict[Any, _Ring] = {}
        self.unrung: set[Any] = set()
        self.tick = -1
        self.updates = -1
        self.live = True


class _Ring:
    __slots__ = ("last_tick", "rule", "run", "threshold", "values", "verdicts")

    def __init__(self, rule: str, size: int) -> None:
        self.rule = rule
        self.threshold: float | None = None
        self.values = array("f", [_NAN]) * size
        self.verdicts = bytearray(size)  # NO_SAMPLE
        self.last_tick = -1  # the last tick its slots hold
        self.run: _Run | None = None  # carried: its last point repeats through run.tick


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
        self._runs: dict[str, _Run] = {}  # by rule name: the runs the last tick went on with

    def __len__(self) -> int:
        return len(self._series)

    def record(self, now: float, samples: Iterable[Entry]) -> None:
        """One evaluation: (rule, labels, value, threshold, active) for every sample."""
        self.record_parts(now, (samples,))

    def record_parts(self, now: float, parts: Iterable[Iterable[Entry] | SeriesPart]) -> None:
        """One evaluation, as the alert book's rows give it (Rows.parts()): each part either
        every sample of some rules or one per-series rule's SeriesPart, in the rules' order
        (the order decides which label sets get the last places under the cap)."""
        with self.lock:
            self._tick += 1
            tick = self._tick
            self._times[tick % self.points] = now
            for part in parts:
                if isinstance(part, SeriesPart):
                    self._record_series(part, tick)
                else:
                    self._record_entries(part, tick)
            for run in [r for r in self._runs.values() if r.tick != tick]:
                self._end(run)  # no part this tick: its rule failed, was removed, ran in full
            if tick % self.points == 0:  # once a lap: forget series with nothing left in the window
                oldest = tick - self.points + 1
                series = self._series
                for labels in [k for k, r in series.items() if _last(r) < oldest]:
                    del series[labels]

    def _record_entries(self, samples: Iterable[Entry], tick: int) -> None:
        size = self.points
        slot = tick % size
        series = self._series
        isfinite = math.isfinite
        for rule, labels, value, threshold, active in samples:
            ring = series.get(labels)
            if ring is None:
                if len(series) >= self.max_series:
                    self.dropped += 1
                    continue
                ring = series[labels] = _Ring(rule, size)
            elif ring.run is not None:
                # Written here, so no longer carried; its run cannot tell its rings any more.
                self._settle(ring, tick - 1)
                if ring.run is not None:
                    self._end(ring.run)
                    ring.run = None
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

    def _record_series(self, part: SeriesPart, tick: int) -> None:
        source, rule = part.source, part.rule
        run = self._runs.get(rule)
        if part.updates != source.updates:
            # Its samples moved on since the tick (rows read late): no telling what is
            # unchanged, so every sample is written.
            if run is not None:
                self._end(run)
            self._record_entries(part.entries(), tick)
            return
        # A run in _runs was recorded last tick (the others were ended); it goes on when its
        # samples are those of the update before, not started afresh since. A second part of
        # the same name in one tick (two rules so named) starts a run anew: written in full.
        goes_on = (
            run is not None
            and run.source is source
            and run.updates == part.updates - 1
            and source.restarted < part.updates
        )
        if run is None or not goes_on:
            if run is not None:
                self._end(run)  # its series not written below stop where it stopped
            run = self._runs[rule] = _Run(rule, source)
            run.tick, run.updates = tick, part.updates
            self._write_all(part, run, tick, None)
        else:
            run.tick, run.updates = tick, part.updates  # every ring of the run carried to now
            if run.unrung and len(self._series) < self.max_series:
                # Places under the cap: the carried samples past it take them in order, as
                # writing every sample would.
                self._write_all(part, run, tick, set(part.changed))
            else:
                self._write_changed(part, run, tick)
        self.dropped += len(run.unrung)

    def _write_changed(self, part: SeriesPart, run: _Run, tick: int) -> None:
        """The changed samples only: the run has none past the cap, or there is no room."""
        samples, rings, unrung = part.source.samples, run.rings, run.unrung
        for key in part.changed:
            sample = samples[key]
            ring = rings.get(key)
            if ring is not None:
                self._write(ring, tick, part.rule, sample)
            elif key not in unrung:
                self._adopt(part, run, key, sample, tick)  # new to the run: may have a ring
            # else: past the cap and still no room; and no ring with its labels can have
            # appeared since (no other rule writes this rule's label sets): dropped without
            # making them

    def _write_all(self, part: SeriesPart, run: _Run, tick: int, changed: set[Any] | None) -> None:
        """Every sample of the part in order: those with a ring written if changed (None: all),
        the others given a ring while there is room."""
        rings, unrung, series, cap = run.rings, run.unrung, self._series, self.max_series
        for key, sample in part.source.samples.items():
            ring = rings.get(key)
            if ring is not None:
                if changed is None or key in changed:
                    self._write(ring, tick, part.rule, sample)
            elif not (key in unrung and len(series) >= cap):  # as in _write_changed
                self._adopt(part, run, key, sample, tick)

    def _adopt(self, part: SeriesPart, run: _Run, key: Any, sample: Sample, tick: int) -> None:
        labels = part.labels(sample.labels)
        series = self._series
        ring = series.get(labels)
        if ring is None:
            if len(series) >= self.max_series:
                run.unrung.add(key)  # counted in dropped once the part is written
                return
            ring = series[labels] = _Ring(part.rule, self.points)
        elif ring.run is not None:
            # What its last run carried (one that ended: runs are by rule name, and the name
            # is in the label set).
            self._settle(ring, tick - 1)
            ring.run = None
        # Written before it joins the run: the ticks since its last point are gaps, not carried.
        self._write(ring, tick, part.rule, sample)
        run.unrung.discard(key)
        run.rings[key] = ring
        ring.run = run

    def _write(self, ring: _Ring, tick: int, rule: str, sample: Sample) -> None:
        """One sample at `tick`, its series carried (or marked missed) up to it first."""
        size = self.points
        if ring.last_tick < tick - 1:
            if ring.run is not None:
                self._settle(ring, tick - 1)
            for missed in range(max(ring.last_tick + 1, tick - size + 1), tick):
                ring.verdicts[missed % size] = NO_SAMPLE
        slot = tick % size
        value, threshold, active = sample.value, sample.threshold, sample.active
        ring.values[slot] = _NAN if value is None or not math.isfinite(value) else value
        ring.verdicts[slot] = UNKNOWN if active is None else ACTIVE if active else INACTIVE
        ring.last_tick = tick
        ring.rule = rule
        if threshold is not None and math.isfinite(threshold):
            ring.threshold = threshold

    def _settle(self, ring: _Ring, upto: int) -> None:
        """Fill in the ticks a carried ring's last point repeated for, up to `upto`."""
        run = ring.run
        assert run is not None
        end = min(run.tick, upto)
        last = ring.last_tick
        if end > last:
            size = self.points
            at = last % size
            value, v = ring.values[at], ring.verdicts[at]
            start = max(last + 1, end - size + 1)  # older ticks are out of the window
            a, n = start % size, end + 1 - start
            head = min(n, size - a)
            ring.values[a : a + head] = array("f", [value]) * head
            ring.verdicts[a : a + head] = bytes((v,)) * head
            if n > head:  # wraps past the end of the ring
                ring.values[: n - head] = array("f", [value]) * (n - head)
                ring.verdicts[: n - head] = bytes((v,)) * (n - head)
            ring.last_tick = end
        if not run.live and upto >= run.tick:
            ring.run = None  # its run ended and everything it carried is filled in

    def _end(self, run: _Run) -> None:
        """A run stops: its rings keep what it carried up to its last tick, and no more."""
        run.live = False
        run.rings, run.unrung = {}, set()
        if self._runs.get(run.rule) is run:
            del self._runs[run.rule]

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
        if ring.run is not None:
            self._settle(ring, self._tick)
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
        """What the rings hold (the label sets are shared with the alert book's cache), and the
        runs' indexes of them."""
        with self.lock:
            per = sum(
                sys.getsizeof(r) + sys.getsizeof(r.values) + sys.getsizeof(r.verdicts)
                for r in self._series.values()
            )
            runs = sum(
                sys.getsizeof(r.rings) + sys.getsizeof(r.unrung) for r in self._runs.values()
            )
            return per + runs + sys.getsizeof(self._series) + sys.getsizeof(self._times)


def _last(ring: _Ring) -> int:
    """The last tick a series has a point for, carried ones included."""
    run = ring.run
    return ring.last_tick if run is None else max(ring.last_tick, run.tick)


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
