"""The alert book: runs every rule once per tick, steps each alert, and persists what changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sentinel.alerts.state import step
from sentinel.config import RuleBase
from sentinel.model import Alert, Labels, Sample, State
from sentinel.rules.base import evaluator
from sentinel.storage.alerts import AlertRepo
from sentinel.store.facts import FactStore
from sentinel.templating import render
from sentinel.units import format_duration

log = logging.getLogger("sentinel.alerts")

# How long a resolved alert stays visible (and available to notify its resolve).
RESOLVED_RETENTION = 900.0
# After a restart the facts start empty (no task series, no queue depth yet), so an alert
# loaded from storage with no sample is held as it was for this long (or its rule's window)
# before it is taken as gone: resolving it would send a resolve, then page again.
RESTORE_GRACE = 300.0

DEFAULT_SUMMARIES = {
    "no_live_workers": "{{ value|number }} live Celery worker(s)"
    " (need at least {{ threshold|number }})",
    "queue_backlog": "Queue {{ labels.queue }} has {{ value|number }} messages waiting"
    " (threshold {{ threshold|number }})",
    "failure_rate": "Task {{ labels.task }} failed {{ value|percent }} of runs over {{ window }}"
    " (threshold {{ threshold|percent }})",
    "idle_worker": "Worker {{ labels.worker }} has started no task for {{ value|duration }}",
    "broker_unreachable": "sentinel cannot reach the Celery broker (for {{ value|duration }})",
    "task_latency": "Task {{ labels.task }} p{{ percentile }} {{ measure }} is {{ value|duration }}"
    " over {{ window }} (threshold {{ threshold|duration }})",
}


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


class AlertBook:
    def __init__(self, repo: AlertRepo | None) -> None:
        self.repo = repo
        self.alerts: dict[str, Alert] = repo.load() if repo is not None else {}
        self._restored = set(self.alerts)  # loaded, and not seen in a sample since
        self._first_tick: float | None = None
        self.last_duration = 0.0
        self.rule_errors = 0
        self.resolved_retention = RESOLVED_RETENTION

    def active(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state is not State.RESOLVED]

    def tick(
        self, rules: Sequence[Any], store: FactStore, now: float
    ) -> tuple[list[Transition], list[Row]]:
        started = time.perf_counter()
        if self._first_tick is None:
            self._first_tick = now
        results: dict[str, list[Sample] | None] = {}
        with store.evaluating():
            for rule in rules:
                try:
                    results[rule.name] = evaluator(rule.kind)(rule, store, now)
                except Exception:  # a broken rule must not stop the others
                    self.rule_errors += 1
                    log.exception(
                        "rule %s failed to evaluate; its alerts keep their state", rule.name
                    )
                    results[rule.name] = None

        transitions: list[Transition] = []
        rows: list[Row] = []
        changed: dict[str, Alert] = {}
        removed: list[str] = []
        seen: set[str] = set()
        by_name = {rule.name: rule for rule in rules}

        for rule in rules:
            samples = results[rule.name]
            if samples is None:
                seen.update(fp for fp, a in self.alerts.items() if a.rule == rule.name)
                continue
            base = {**rule.labels, "alertname": rule.name, "severity": rule.severity.value}
            for sample in samples:
                labels = Labels({**base, **sample.labels})
                fp = labels.fingerprint
                seen.add(fp)
                self._restored.discard(fp)
                prev = self.alerts.get(fp)
                new = step(
                    prev,
                    sample.active,
                    rule=rule.name,
                    labels=labels,
                    value=sample.value,
                    threshold=sample.threshold,
                    for_=rule.for_,
                    now=now,
                )
                self._record(prev, new, fp, labels, rule, transitions, changed, removed)
                rows.append(
                    Row(
                        rule.name,
                        labels,
                        sample.value,
                        sample.threshold,
                        _row_state(new, sample.active),
                    )
                )

        # Alerts with no sample this tick: their instance vanished (worker pruned, queue gone)
        # or their rule was removed by a reload. Either way the condition no longer holds.
        for fp, prev in list(self.alerts.items()):
            if prev.state is State.RESOLVED:
                # Resolved alerts are kept only long enough to notify and show their resolve.
                if now - (prev.resolved_at or now) > self.resolved_retention:
                    del self.alerts[fp]
                    removed.append(fp)
                continue
            if fp in seen:
                continue
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

        if self.repo is not None:
            self.repo.save(changed.values(), removed)
        self.last_duration = time.perf_counter() - started
        return transitions, rows

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
            new = replace(new, annotations=annotations(rule, new))
        if new != prev:
            self.alerts[fp] = new
            changed[fp] = new
        if prev is None or prev.state is not new.state:
            transitions.append(Transition(prev.state if prev else None, new, fp, labels))


def annotations(rule: Any, alert: Alert) -> dict[str, str]:
    context = {
        "labels": dict(alert.labels),
        "value": alert.value,
        "threshold": alert.threshold,
        "for": format_duration(rule.for_) if rule.for_ else "0s",
        "rule": rule.name,
        **{k: v for k, v in dict(alert.labels).items() if k not in ("value", "threshold")},
    }
    for key in ("window", "idle_for"):
        if hasattr(rule, key):
            context[key] = format_duration(getattr(rule, key))
    for key in ("measure", "workers", "queues", "tasks", "min_count"):
        if hasattr(rule, key):
            context[key] = getattr(rule, key)
    if hasattr(rule, "percentile"):
        context["percentile"] = f"{rule.percentile:g}"
    out = {"summary": render(rule.summary or DEFAULT_SUMMARIES[rule.kind], context)}
    if rule.description:
        out["description"] = render(rule.description, context)
    return out


def _row_state(alert: Alert | None, active: bool | None) -> str:
    if alert is not None:
        return alert.state.value
    return "unknown" if active is None else "inactive"
