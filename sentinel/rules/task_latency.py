from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.facts.windows import MEASURES
from sentinel.fields import Globs, Percentile, PositiveWait, SampleCount, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, over_matching
from sentinel.units import format_duration


class TaskLatencyRule(RuleBase):
    kind: Literal["task_latency"]
    tasks: Globs = ("*",)
    measure: Literal["queue_wait", "runtime", "total"] = "total"
    percentile: Percentile = 95.0
    threshold: PositiveWait
    window: Window = 600.0
    min_count: SampleCount = 10

    def describe(self) -> str:
        return (
            f"p{self.percentile:g} {self.measure} > {format_duration(self.threshold)} over "
            f"{format_duration(self.window)} (min {self.min_count}) for tasks {list(self.tasks)}"
        )


def per_series(
    rule: TaskLatencyRule, store: FactStore, now: float, series: list[tuple[str, TaskSeries]]
) -> list[Sample]:
    """The chosen percentile of one latency measure per task name over the window."""
    measure = MEASURES.index(rule.measure)
    q = rule.percentile / 100.0
    samples = []
    for name, one in series:
        value, count = store.window_quantile(one, measure, rule.window, now, q)
        if value is None:
            samples.append(Sample({"task": name}, None, rule.threshold, False))
            continue
        verdict = value > rule.threshold if count >= rule.min_count else None
        samples.append(Sample({"task": name}, value, rule.threshold, verdict))
    return samples


SUMMARY = (
    "Task {{ labels.task }} p{{ percentile }} {{ measure }} is {{ value|duration }}"
    " over {{ window }} (threshold {{ threshold|duration }})"
)

evaluate = over_matching(per_series)

KIND = RuleKind(
    kind="task_latency",
    evaluate=evaluate,
    per_series=per_series,
    schema=TaskLatencyRule,
    summary=SUMMARY,
    unit="seconds",
)
