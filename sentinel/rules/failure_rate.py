from __future__ import annotations

from sentinel.config import FailureRateRule
from sentinel.facts.store import FactStore
from sentinel.facts.windows import FAILED, SUCCEEDED
from sentinel.model import Sample
from sentinel.rules.base import matching_tasks


def evaluate(rule: FailureRateRule, store: FactStore, now: float) -> list[Sample]:
    """failed / (succeeded + failed) per task name over the window; no verdict below min_count.

    The window's counters come from store.window_counts, shared with every other rule over
    the same (series, window) in the tick: `*` and `app.*` rules with one window sum each
    series once.
    """
    window, threshold, min_count = rule.window, rule.threshold, rule.min_count
    window_counts = store.window_counts
    samples: list[Sample] = []
    append = samples.append
    for name, series in matching_tasks(store, rule.tasks):
        counts = window_counts(series, window, now)
        failed = counts[FAILED]
        finished = failed + counts[SUCCEEDED]
        if finished == 0:
            # Nothing finished in the window: no rate, so no verdict either way. A firing
            # alert holds (an idle or unobserved task is not a healed one).
            append(Sample({"task": name}, None, threshold, None))
            continue
        rate = failed / finished
        if finished >= min_count:
            verdict: bool | None = rate > threshold
        else:
            verdict = False if failed == 0 else None  # nothing failed: certainly not over it
        append(Sample({"task": name}, rate, threshold, verdict))
    return samples
