"""What a per-series rule (RuleKind.per_series) keeps from one tick to the next: its sample of
every matching task series, so that a tick evaluates only the series whose window answers may
have changed since (facts/journal.py) and reuses the others' samples as they were.

A sample is a function of the rule and the series' window answers, so a series nothing was
written to and no bucket of which left the window has the same sample as at the last tick.
Everything is evaluated again on the first tick, after a reload (a new rule object), when the
journal was invalidated (a budget drop, a retention change) or no longer reaches back to the
rule's last tick, and when time went backwards.
"""

from __future__ import annotations

from typing import Any

from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.model import Sample
from sentinel.rules.base import EvaluateSeries, matching_tasks

# Series evaluated per hold of the store lock: ~10-50 ms of work, so a tick over 10,000
# series never keeps ingest waiting for longer.
CHUNK = 1000


class SeriesSamples:
    """One rule's samples by series, in the store's order of the series."""

    __slots__ = (
        "alerting",
        "complete",
        "epoch",
        "gen",
        "matched",
        "names_version",
        "restarted",
        "rule",
        "samples",
        "seen",
        "since",
        "updates",
    )

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.samples: dict[TaskSeries, Sample] = {}
        # The series whose sample has an alert in the book (any state): the book steps them
        # every tick whether or not they changed (`for` runs out, resolved alerts age).
        self.alerting: dict[TaskSeries, str] = {}
        # Whether `alerting` lists every series of this rule that has an alert in the book: true
        # once the book stepped every matching series (a new rule object may inherit alerts
        # from the one it replaced, or from storage). Then a series with an inactive sample
        # that is not in `alerting` has nothing to step, and is passed over before its labels
        # are even looked up.
        self.complete = False
        # The matching series and their place in the store's order: what a tick evaluates is
        # taken in that order, so transitions come in the order a full evaluation gives.
        self.matched: dict[TaskSeries, int] = {}
        self.seen = 0  # how much of matching_tasks' list `matched` holds
        self.names_version = 0  # the store's, as of `matched`
        self.gen = -1
        self.epoch = -1
        self.since: float | None = None
        # Updates so far, and the one that last started `samples` afresh: between two updates
        # of one run (restarted before the later), only the series the later returned changed
        # sample (the value history writes only those: alerts/values.py).
        self.updates = 0
        self.restarted = 0

    def update(
        self, per_series: EvaluateSeries, store: FactStore, now: float, gen: int
    ) -> list[TaskSeries]:
        """Evaluate what may have changed; return those series (every matching one when all
        were evaluated). `gen` is the journal generation closed before this tick's first
        rule (journal.snapshot()): every write up to it is seen here. Takes store.lock itself,
        CHUNK series at a time, so ingest waits for one chunk at most."""
        rule = self.rule
        self.updates += 1
        with store.lock:
            todo = self._todo(store, now)
            # As of the series chosen: a budget drop between two chunks is seen next tick.
            epoch = store.journal.epoch
        samples: list[Sample] = []
        for i in range(0, len(todo), CHUNK):
            if i:
                store.handover()
            with store.lock:
                samples.extend(per_series(rule, store, now, todo[i : i + CHUNK]))
        self.samples.update(zip([series for _, series in todo], samples, strict=True))
        self.gen, self.epoch, self.since = gen, epoch, now
        return [series for _, series in todo]

    def _todo(self, store: FactStore, now: float) -> list[tuple[str, TaskSeries]]:
        """The (name, series) to evaluate, in the store's order. Call with store.lock held."""
        rule = self.rule
        found = matching_tasks(store, rule.tasks)
        journal = store.journal
        new = found[self.seen :]
        # Names were forgotten (the store bumps names_version when it removes any; a shorter
        # list says so too): start over, or a name added in the same tick would be missed.
        if len(found) < self.seen or store.names_version != self.names_version:
            self.names_version = store.names_version
            self.samples.clear()
            self.restarted = self.updates
            self.alerting.clear()
            self.complete = False
            self.matched.clear()
            self.since = None
            new = found
        matched = self.matched
        for _, series in new:
            matched[series] = len(matched)
        self.seen = len(found)
        changed = None
        if self.since is not None and journal.epoch == self.epoch and now >= self.since:
            changed = _changed(store, self.gen, self.since, rule.window, now)
        if changed is None:
            return found
        mine = matched.keys() & changed
        mine.update(series for _, series in new)
        if 2 * len(mine) >= len(matched):
            return found  # most changed: all, in order, costs less than sorting them
        return [(s.name, s) for s in sorted(mine, key=matched.__getitem__)]

    def to_step(self, changed: list[TaskSeries]) -> list[TaskSeries]:
        """The series the book steps: those evaluated and those with an alert, in order."""
        if not self.alerting or len(changed) == len(self.matched):
            return changed
        both = set(changed)
        both.update(self.alerting)
        return sorted(both, key=self.matched.__getitem__)


def _changed(
    store: FactStore, gen: int, since: float, window: float, now: float
) -> frozenset[TaskSeries] | None:
    """The series whose answers over `window` may have changed between (gen, since) and now;
    None when the journal cannot tell. The rules of one tick ask the same question (same
    generation, same last tick, a few windows): answered once per tick (store.sharing())."""
    cache = store.tick_cache
    key = ("changed", gen, since, window, now)
    if cache is not None and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    written = store.journal.written_since(gen)
    left = store.journal.left_window(window, since, now)
    answer = None
    if written is not None and left is not None:
        answer = frozenset(written | left)
    if cache is not None:
        cache[key] = answer
    return answer
