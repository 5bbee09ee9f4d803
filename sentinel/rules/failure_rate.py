from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.facts.windows import FAILED, SUCCEEDED
from sentinel.fields import Globs, Ratio, SampleCount, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, over_matching
from sentinel.units import format_duration


class FailureRateRule(RuleBase):
    kind: Literal["failure_rate"]
    tasks: Globs = ("*",)
    window: Window = 300.0
    threshold: Ratio
    min_count: SampleCount = 20

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if v <= 0 or v >= 1:
            raise ValueError("must be > 0% and < 100%")
        return v

    def describe(self) -> str:
        return (
            f"failure rate > {self.threshold:.2%} over {format_duration(self.window)} "
            f"(min {self.min_count}) for tasks {list(self.tasks)}"
        )


def per_series(
    rule: FailureRateRule, store: FactStore, now: float, series: list[tuple[str, TaskSeries]]
) -> list[Sample]:
    """failed / (succeeded + failed) per task name over the window; no verdict below min_count.

    The window's counters come from store.window_counts, shared with every other rule over
    the same (series, window) in the tick: `*` and `app.*` rules with one window sum each
    series once.
    """
    window, threshold, min_count = rule.window, rule.threshold, rule.min_count
    window_counts = store.window_counts
    samples: list[Sample] = []
    append = samples.append
    for name, one in series:
        counts = window_counts(one, window, now)
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


SUMMARY = (
    "Task {{ labels.task }} failed {{ value|percent }} of runs over {{ window }}"
    " (threshold {{ threshold|percent }})"
)

evaluate = over_matching(per_series)

KIND = RuleKind(
    kind="failure_rate",
    evaluate=evaluate,
    per_series=per_series,
    schema=FailureRateRule,
    summary=SUMMARY,
    unit="percent",
)
