from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.facts.windows import MEASURES
from sentinel.fields import Globs, Percentile, PositiveWait, SampleCount, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching_tasks
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


SUMMARY = (
    "Task {{ labels.task }} p{{ percentile }} {{ measure }} is {{ value|duration }}"
    " over {{ window }} (threshold {{ threshold|duration }})"
)

KIND = RuleKind(
    kind="task_latency",
    evaluate=evaluate,
    schema=TaskLatencyRule,
    summary=SUMMARY,
    unit="seconds",
)
