"""The alert book: runs every rule once per tick, steps each alert, and persists what changed."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

from sentinel.alerts.repo import AlertRepo
from sentinel.alerts.state import step
from sentinel.alerts.values import Entry, SeriesPart
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.model import Alert, Labels, Sample, State
from sentinel.rules import default_summary, evaluator, holds_during_outage, per_series_evaluator
from sentinel.rules.base import RuleBase
from sentinel.rules.broker_unreachable import unreachable as broker_unreachable
from sentinel.rules.incremental import SeriesSamples
from sentinel.templating import render
from sentinel.units import format_duration

log = logging.getLogger("sentinel.alerts")

# How long a resolved alert stays visible (and available to notify its resolve).
RESOLVED_RETENTION = 900.0
# After a restart the facts start empty (no task series, no queue depth yet), so an alert
# loaded from storage with no sample is held as it was for this long (or its rule's window)
# before it is taken as gone: resolving it would send a resolve, then page again.
RESTORE_GRACE = 300.0
# A failing rule's traceback is logged at most this often (its failures are all counted).
RULE_ERROR_LOG_EVERY = 300.0
# Label sets kept per rule beyond the instances of the current tick (workers come and go).
LABEL_CACHE_SLACK = 1024


@dataclass(frozen=True, slots=True)
class Transition:
    before: State | None  # None: the alert did not exist
    alert: Alert | None  # None: a pending alert that cleared and was dropped
    fingerprint: str
    labels: Labels


@dataclass(frozen=True, slots=True)
class Row:
    """One line of `sentinel eval`: a verdict, whether or not it made an alert."""

    rule: str
    labels: Labels
    value: float | None
    threshold: float
    state: str


class Rows(Sequence[Row]):
    """The rows of one tick, built only when read.

    The daemon never reads them and a tick has one per sample (49,000 over 10,000 task
    series): each rule's samples and label sets are kept as they are, and a Row is made for
    `sentinel eval` when it iterates.
    """

    __slots__ = ("_len", "_list", "_parts", "_series")

    def __init__(self) -> None:
        # (rule name, samples, their label sets, sample index -> state of its alert), or for a
        # per-series rule (rule name, samples, the rule's labels, instance -> state): label
        # sets are then made only when read.
        self._parts: list[tuple[str, list[Sample], Any, dict[Any, str]]] = []
        # A per-series rule's part as the value history takes it, by its index in _parts.
        self._series: dict[int, SeriesPart] = {}
        self._len = 0
        self._list: list[Row] | None = None

    def _add(
        self, rule: str, samples: list[Sample], labels: list[Labels], states: dict[int, str]
    ) -> None:
        self._parts.append((rule, samples, labels, states))
        self._len += len(samples)

    def _add_lazy(
        self,
        rule: str,
        samples: list[Sample],
        base: Mapping[str, str],
        states: dict[tuple[tuple[str, str], ...], str],
        kept: SeriesSamples | None = None,
        changed: Sequence[TaskSeries] = (),
    ) -> None:
        """A per-series rule's samples; with `kept` (what holds them) and the series `changed`
        this tick, the value history writes only those (values.SeriesPart)."""
        if kept is not None:
            self._series[len(self._parts)] = SeriesPart(
                rule, kept, kept.updates, changed, Labeler(base), samples
            )
        self._parts.append((rule, samples, base, states))
        self._len += len(samples)

    def __len__(self) -> int:
        return self._len

    def samples(self) -> Iterator[Entry]:
        """(rule, labels, value, threshold, active) of every sample, without making Rows."""
        for part in self._parts:
            yield from _entries(*part)

    def parts(self) -> Iterator[Iterable[Entry] | SeriesPart]:
        """The samples as the value history records them (ValueHistory.record_parts): each
        per-series rule's as a SeriesPart (only its changed samples are written), the others'
        as in samples(). Valid until the book's next tick."""
        for i, part in enumerate(self._parts):
            series = self._series.get(i)
            yield _entries(*part) if series is None else series

    def __iter__(self) -> Iterator[Row]:
        if self._list is not None:
            yield from self._list
            return
        for rule, samples, labels, states in self._parts:
            if not isinstance(labels, list):  # a per-series rule's part
                for sample in samples:
                    state = states.get(tuple(sample.labels.items()))
                    if state is None:
                        state = "unknown" if sample.active is None else "inactive"
                    row_labels = Labels({**labels, **sample.labels})
                    yield Row(rule, row_labels, sample.value, sample.threshold, state)
                continue
            for i, sample in enumerate(samples):
                state = states.get(i)
                if state is None:
                    state = "unknown" if sample.active is None else "inactive"
                yield Row(rule, labels[i], sample.value, sample.threshold, state)

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if self._list is None:
            self._list = list(self)
        return self._list[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({list(self)!r})"


def _entries(rule: str, samples: list[Sample], labels: Any, _states: object) -> Iterator[Entry]:
    """One part's (rule, labels, value, threshold, active)."""
    if isinstance(labels, list):
        for sample, label_set in zip(samples, labels, strict=True):
            yield rule, label_set, sample.value, sample.threshold, sample.active
        return
    make = Labeler(labels)  # a per-series rule's part: the rule's labels
    for sample in samples:
        yield rule, make(sample.labels), sample.value, sample.threshold, sample.active


class Labeler:
    """A per-series rule's label sets: the rule's labels and the sample's. The sample's one
    label (its task) is inserted into the rule's sorted items where sorting would put it, not
    merged and sorted anew (a tick has ~49,000 of these)."""

    __slots__ = ("_base", "_items", "_names", "_where")

    def __init__(self, base: Mapping[str, str]) -> None:
        self._base = base
        self._items = tuple(sorted((str(k), str(v)) for k, v in base.items()))
        self._names = [k for k, _ in self._items]
        self._where: dict[str, int] = {}

    def __call__(self, extra: Mapping[str, str]) -> Labels:
        if len(extra) == 1:
            ((k, v),) = extra.items()
            at = self._where.get(k)
            if at is None and isinstance(k, str) and k not in self._base:
                at = self._where[k] = bisect_left(self._names, k)
            if at is not None and isinstance(v, str):
                items = self._items
                return Labels.from_sorted((*items[:at], (k, v), *items[at:]))
        return Labels({**self._base, **extra})


@dataclass(slots=True)
class _Tick:
    """What one tick has done so far, shared by the steps of every rule."""

    transitions: list[Transition] = field(default_factory=list)
    rows: Rows = field(default_factory=Rows)
    changed: dict[str, Alert] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # fingerprints a rule spoke for
    held: set[str] = field(default_factory=set)  # rules holding through a broker outage
    used: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)


class AlertBook:
    def __init__(self, repo: AlertRepo | None, *, incremental: bool = True) -> None:
        """incremental=False evaluates per-series rules over every series each tick, as
        before rules/incremental.py: the tests' reference and the benchmark's baseline."""
        self.repo = repo
        self.incremental = incremental
        self.alerts: dict[str, Alert] = repo.load() if repo is not None else {}
        self._restored = set(self.alerts)  # loaded, and not seen in a sample since
        self._first_tick: float | None = None
        self.last_duration = 0.0
        self.last_rules_duration = 0.0  # the part of last_duration spent in rule evaluators
        self.rule_errors = 0
        self.rule_errors_by_rule: Counter[str] = Counter()
        self._error_logged_at: dict[str, float] = {}  # rule -> when its last error was logged
        self._errors_unlogged: Counter[str] = Counter()
        self.resolved_retention = RESOLVED_RETENTION
        # (rule name, rule labels + alertname + severity) -> sample labels -> (label set,
        # fingerprint): a sample costs a dict lookup, not a sort and a sha256. Keyed on the
        # rule's own labels too, so a rule reloaded with other labels gets new label sets.
        self._labels: dict[
            tuple[str, tuple[tuple[str, str], ...]],
            dict[tuple[tuple[str, str], ...], tuple[Labels, str]],
        ] = {}
        # fingerprint -> (rule, value, threshold, annotations) of the last rendering: an alert
        # whose rule, value and threshold are unchanged keeps its annotations.
        self._rendered: dict[str, tuple[Any, str, str, Mapping[str, str]]] = {}
        # Per-series rules' samples from tick to tick, by rule name (rules/incremental.py).
        self._series: dict[str, SeriesSamples] = {}

    def active(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state is not State.RESOLVED]

    def next_deadline(self, rules: Sequence[Any], after: float | None = None) -> float | None:
        """When the first pending alert's `for` runs out (the first one later than `after`:
        one already evaluated, still pending because its rule could not tell, must not hide
        the next). The evaluation that would fire it should run then, not at the next tick."""
        for_ = {rule.name: rule.for_ for rule in rules}
        deadlines = [
            a.active_at + for_[a.rule]
            for a in list(self.alerts.values())
            if a.state is State.PENDING and a.rule in for_
        ]
        return min((d for d in deadlines if after is None or d > after), default=None)

    def tick(
        self, rules: Sequence[Any], store: FactStore, now: float
    ) -> tuple[list[Transition], Rows]:
        """Evaluate every rule, step every alert, persist what changed. The app runs it under
        `gc_paused()` (sentinel/gc_pause.py: why)."""
        started = time.perf_counter()
        if self._first_tick is None:
            self._first_tick = now
        results: dict[str, list[Sample] | None] = {}
        evaluated: dict[str, list[TaskSeries]] = {}  # per-series rules: what they evaluated
        with store.lock:
            # While the broker cannot be reached, silence proves nothing: no rule resolves an
            # alert (or drops a pending one) for lack of data until it is back.
            outage = broker_unreachable(store)
            gen = store.journal.snapshot()
        with store.sharing():
            for rule in rules:
                # One rule (or one chunk of a per-series rule's series) at a time under the
                # lock: ingest waits for that, never for a whole tick.
                try:
                    per_series = per_series_evaluator(rule.kind)
                    if per_series is None or not self.incremental:
                        with store.lock:
                            results[rule.name] = evaluator(rule.kind)(rule, store, now)
                    else:
                        kept = self._series.get(rule.name)
                        if kept is None or kept.rule is not rule:
                            kept = self._series[rule.name] = SeriesSamples(rule)
                        evaluated[rule.name] = kept.update(per_series, store, now, gen)
                        results[rule.name] = []
                except Exception:  # a broken rule must not stop the others
                    self._rule_failed(rule, "evaluate", now)
                    results[rule.name] = None
                    self._series.pop(rule.name, None)
                store.handover()  # a writer waiting for the lock gets it
        for name in [n for n in self._series if n not in results]:
            del self._series[name]  # a rule removed by a reload
        self.last_rules_duration = time.perf_counter() - started

        tick = _Tick()
        by_name = {rule.name: rule for rule in rules}
        for rule in rules:
            samples = results[rule.name]
            hold = outage and holds_during_outage(rule.kind)
            if samples is not None:
                try:
                    if rule.name in evaluated:
                        self._step_series(rule, evaluated[rule.name], hold, now, tick)
                    else:
                        self._step_rule(rule, samples, hold, now, tick)
                    continue
                except Exception:  # a bad sample or side table must not stop the others
                    self._rule_failed(rule, "record", now)
                    # Its kept samples and alert index may be half-stepped: start it afresh.
                    self._series.pop(rule.name, None)
            tick.seen.update(fp for fp, a in self.alerts.items() if a.rule == rule.name)
            if hold:
                tick.held.add(rule.name)
        for key in [k for k in self._labels if k not in tick.used]:
            del self._labels[key]
        transitions, changed, removed = tick.transitions, tick.changed, tick.removed
        seen, rows, alerts = tick.seen, tick.rows, self.alerts

        # Alerts with no sample this tick: their instance vanished (worker pruned, queue gone)
        # or their rule was removed by a reload. Either way the condition no longer holds.
        for fp, prev in list(self.alerts.items()):
            if prev.state is State.RESOLVED:
                # Resolved alerts are kept only long enough to notify and show their resolve.
                if now - (prev.resolved_at or now) > self.resolved_retention:
                    del self.alerts[fp]
                    removed.append(fp)
                continue
            if fp in seen or prev.rule in tick.held:
                continue  # an instance that vanished during an outage may just be unseen
            rule = by_name.get(prev.rule)
            if fp in self._restored and rule is not None:
                grace = max(RESTORE_GRACE, getattr(rule, "window", 0.0))
                if now - self._first_tick < grace:
                    continue
                self._restored.discard(fp)
            new = step(
                prev,
                False,
                rule=prev.rule,
                labels=prev.labels,
                value=prev.value,
                threshold=prev.threshold,
                for_=0.0,
                now=now,
            )
            self._record(prev, new, fp, prev.labels, rule, transitions, changed, removed)

        if len(self._rendered) > len(alerts):
            self._rendered = {fp: r for fp, r in self._rendered.items() if fp in alerts}
        if self.repo is not None:
            self.repo.save(changed.values(), removed)
        self.last_duration = time.perf_counter() - started
        return transitions, rows

    def _step_rule(
        self, rule: Any, samples: list[Sample], hold: bool, now: float, tick: _Tick
    ) -> None:
        """Step every alert of one rule from its samples (hold: a False verdict counts as
        "cannot tell", the broker being unreachable)."""
        alerts = self.alerts
        restored = self._restored
        base, cache = self._label_cache(rule, len(samples), hold, tick)
        instance_labels: list[Labels] = []
        states: dict[int, str] = {}
        for i, sample in enumerate(samples):
            instance = tuple(sample.labels.items())
            hit = cache.get(instance)
            if hit is None:
                labels = Labels({**base, **sample.labels})
                hit = cache[instance] = (labels, labels.fingerprint)
            labels, fp = hit
            instance_labels.append(labels)
            prev = alerts.get(fp)
            if prev is None and not sample.active:
                # Inactive or unknown, and no alert: nothing to step, record or render.
                if restored:
                    restored.discard(fp)
                continue
            new = self._step_sample(prev, sample, labels, fp, rule, hold, now, tick)
            if new is not None:
                states[i] = new.state.value
        tick.rows._add(rule.name, samples, instance_labels, states)

    def _step_series(
        self, rule: Any, changed: list[TaskSeries], hold: bool, now: float, tick: _Tick
    ) -> None:
        """_step_rule for a per-series rule: steps the samples of the series it evaluated and
        of those with an alert; the others' samples are as they were, with no alert, so
        there is nothing to step (rules/incremental.py)."""
        kept = self._series[rule.name]
        samples, alerting = kept.samples, kept.alerting
        alerts = self.alerts
        restored = self._restored
        base, cache = self._label_cache(rule, len(samples), hold, tick)
        states: dict[tuple[tuple[str, str], ...], str] = {}
        # Most samples are inactive with no alert: nothing to step. Once `alerting` is known
        # complete, those are passed over on one attribute read (a tick may evaluate thousands).
        skip = kept.complete and not restored
        full = len(changed) == len(kept.matched)
        for series in kept.to_step(changed):
            sample = samples[series]
            if skip and not sample.active and series not in alerting:
                continue
            instance = tuple(sample.labels.items())
            hit = cache.get(instance)
            if hit is None:
                labels = Labels({**base, **sample.labels})
                hit = cache[instance] = (labels, labels.fingerprint)
            labels, fp = hit
            prev = alerts.get(fp)
            if prev is None and not sample.active:
                alerting.pop(series, None)
                if restored:
                    restored.discard(fp)
                continue
            new = self._step_sample(prev, sample, labels, fp, rule, hold, now, tick)
            if new is None:
                alerting.pop(series, None)
            else:
                alerting[series] = fp
                states[instance] = new.state.value
        if full:
            kept.complete = True  # every matching series was looked up in the book
        tick.rows._add_lazy(rule.name, list(samples.values()), base, states, kept, changed)

    def _label_cache(
        self, rule: Any, samples: int, hold: bool, tick: _Tick
    ) -> tuple[dict[str, str], dict[tuple[tuple[str, str], ...], tuple[Labels, str]]]:
        """The rule's own labels and its cache of sample labels -> (label set, fingerprint),
        kept for this tick (started afresh when it holds many more than the rule's samples);
        a held rule is noted as held."""
        base = {**rule.labels, "alertname": rule.name, "severity": rule.severity.value}
        key = (rule.name, tuple(sorted((str(k), str(v)) for k, v in base.items())))
        tick.used.add(key)
        cache = self._labels.get(key)
        if cache is None or len(cache) > samples + LABEL_CACHE_SLACK:
            cache = self._labels[key] = {}
        if hold:
            tick.held.add(rule.name)
        return base, cache

    def _step_sample(
        self,
        prev: Alert | None,
        sample: Sample,
        labels: Labels,
        fp: str,
        rule: Any,
        hold: bool,
        now: float,
        tick: _Tick,
    ) -> Alert | None:
        """One sample's alert through its transition, recorded: the step both kinds of rule
        share (_step_rule, _step_series). A held rule's False is "cannot tell"."""
        tick.seen.add(fp)
        self._restored.discard(fp)
        active = None if hold and sample.active is False else sample.active
        new = step(
            prev,
            active,
            rule=rule.name,
            labels=labels,
            value=sample.value,
            threshold=sample.threshold,
            for_=rule.for_,
            now=now,
        )
        self._record(
            prev,
            new,
            fp,
            labels,
            rule,
            tick.transitions,
            tick.changed,
            tick.removed,
            sample.detail,
        )
        return new

    def _rule_failed(self, rule: Any, stage: str, now: float) -> None:
        """Count a rule's failure and log it, with its traceback at most once per rule every
        RULE_ERROR_LOG_EVERY seconds: a rule broken for days must not flood the log."""
        self.rule_errors += 1
        self.rule_errors_by_rule[rule.name] += 1
        last = self._error_logged_at.get(rule.name)
        if last is not None and now - last < RULE_ERROR_LOG_EVERY:
            self._errors_unlogged[rule.name] += 1
            return
        self._error_logged_at[rule.name] = now
        quiet = self._errors_unlogged.pop(rule.name, 0)
        log.exception(
            "rule %s (%s) failed to %s; its alerts keep their state, the other rules go on%s",
            rule.name,
            rule.kind,
            stage,
            f" ({quiet} more failure(s) not logged)" if quiet else "",
        )

    def _record(
        self,
        prev: Alert | None,
        new: Alert | None,
        fp: str,
        labels: Labels,
        rule: RuleBase | None,
        transitions: list[Transition],
        changed: dict[str, Alert],
        removed: list[str],
        detail: Mapping[str, str] | None = None,
    ) -> None:
        if new is None:
            if prev is not None:
                del self.alerts[fp]
                removed.append(fp)
                transitions.append(Transition(prev.state, None, fp, labels))
            return
        resolving = new.state is State.RESOLVED and prev is not None and prev != new
        if rule is not None and (new.state is not State.RESOLVED or resolving):
            # Rendered once more on resolve, so the resolve message shows the value that
            # resolved it rather than the last one that fired.
            try:
                new = self._annotate(fp, rule, new, detail)
            except Exception:  # the alert still pages, with the annotations it had
                self._rule_failed(rule, "render", new.updated_at)
        if new != prev:
            self.alerts[fp] = new
            changed[fp] = new
        if prev is None or prev.state is not new.state:
            transitions.append(Transition(prev.state if prev else None, new, fp, labels))

    def _annotate(
        self, fp: str, rule: Any, alert: Alert, detail: Mapping[str, str] | None = None
    ) -> Alert:
        """The alert with its annotations, rendered again only when what they show changed.

        A template sees the rule, the labels (one per fingerprint), the value and the
        threshold; the same rule object with the same value and threshold renders the same.
        """
        value, threshold = repr(alert.value), repr(alert.threshold)
        if rule.for_ and "for" in f"{rule.summary} {rule.description}":
            threshold += f"/{_for_text(rule, alert)}"  # `for` moves while pending
        last = self._rendered.get(fp)
        if last is not None and last[0] is rule and last[1] == value and last[2] == threshold:
            rendered = last[3]
        else:
            rendered = render_annotations(rule, alert)
            self._rendered[fp] = (rule, value, threshold, rendered)
        if detail:  # the sample's own annotations: merged, never rendered
            rendered = {**rendered, **detail}
        if alert.annotations is rendered:
            return alert
        return replace(alert, annotations=rendered)


def _for_text(rule: Any, alert: Alert) -> str:
    """`{{ for }}`: the rule's `for` once the alert fires; while it is pending, how long the
    condition has held so far (a pending alert has not been true for the whole `for` yet)."""
    held = rule.for_
    if alert.state is State.PENDING:
        held = min(held, max(0.0, alert.updated_at - alert.active_at))
    return format_duration(round(held)) if held >= 1 else "0s"


def render_annotations(rule: Any, alert: Alert) -> dict[str, str]:
    context = {
        "labels": dict(alert.labels),
        "value": alert.value,
        "threshold": alert.threshold,
        "for": _for_text(rule, alert),
        "rule": rule.name,
        **{k: v for k, v in dict(alert.labels).items() if k not in ("value", "threshold")},
    }
    for key in ("window", "idle_for", "running_for", "stalled_for", "every", "grace"):
        if getattr(rule, key, None) is not None:
            context[key] = format_duration(getattr(rule, key))
    for key in ("measure", "workers", "queues", "tasks", "min_count", "event", "restarts"):
        if hasattr(rule, key):
            context[key] = getattr(rule, key)
    if hasattr(rule, "percentile"):
        context["percentile"] = f"{rule.percentile:g}"
    summary = rule.summary or default_summary(rule.kind)
    out = {"summary": render(summary, context)}
    if rule.description:
        out["description"] = render(rule.description, context)
    return out
