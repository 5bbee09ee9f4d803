from __future__ import annotations

from sentinel.config import TaskLatencyRule
from sentinel.facts.store import FactStore
from sentinel.facts.windows import MEASURES
from sentinel.model import Sample
from sentinel.rules.base import matching_tasks


def evaluate(rule: TaskLatencyRule, store: FactStore, now: float) -> list[Sample]:
    """The chosen percentile of one latency measure per task name over the window."""
    measure = MEASURES.index(rule.measure)
    q = rule.percentile / 100.0
    samples = []
    for name, series in matching_tasks(store, rule.tasks):
        value, count = store.window_quantile(series, measure, rule.window, now, q)
        if value is None:
            samples.append(Sample({"task": name}, None, rule.threshold, False))
            continue
        verdict = value > rule.threshold if count >= rule.min_count else None
        samples.append(Sample({"task": name}, value, rule.threshold, verdict))
    return samples
