from __future__ import annotations

from sentinel.config import FailureRateRule
from sentinel.model import Sample
from sentinel.rules.base import matching_tasks
from sentinel.store.facts import FactStore
from sentinel.store.windows import FAILED, SUCCEEDED


def evaluate(rule: FailureRateRule, store: FactStore, now: float) -> list[Sample]:
    """failed / (succeeded + failed) per task name over the window; no verdict below min_count."""
    samples = []
    for name, series in matching_tasks(store, rule.tasks):
        counts = store.window_counts(series, rule.window, now)
        failed, finished = counts[FAILED], counts[FAILED] + counts[SUCCEEDED]
        if finished == 0:
            samples.append(Sample({"task": name}, None, rule.threshold, False))
            continue
        rate = failed / finished
        verdict = rate > rule.threshold if finished >= rule.min_count else None
        if verdict is None and failed == 0:
            verdict = False  # nothing failed: certainly not over the threshold
        samples.append(Sample({"task": name}, rate, rule.threshold, verdict))
    return samples
