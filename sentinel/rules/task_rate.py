"""task_rate: events per second of one Celery event type per task name over a window, above or
below a threshold (a retry storm; a throughput that dropped to zero).

`below` and names never seen: a task name is measured once sentinel has seen one event of it,
or from the start when the rule names it literally (no `*?[`), so a task that is expected but
never arrives still reads 0/s. In the first `window` after sentinel starts the window is not
full, so a rate below the threshold is no verdict yet (it would page on every restart).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from sentinel.facts.store import FactStore
from sentinel.facts.windows import COUNTERS
from sentinel.fields import Globs, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching_tasks
from sentinel.units import format_duration

Event = Literal[
    "sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected"
]


class TaskRateRule(RuleBase):
    kind: Literal["task_rate"]
    tasks: Globs = ("*",)
    event: Event
    window: Window = 300.0
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> TaskRateRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below` (events per second)")
        bound = self.above if self.above is not None else self.below
        if bound is None or not 0 <= bound <= 1e9:
            raise ValueError("`above` / `below` must be between 0 and 1e9 events per second")
        return self

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    def describe(self) -> str:
        side = "above" if self.above is not None else "below"
        return (
            f"task-{self.event} events/s {side} {self.threshold:g} over "
            f"{format_duration(self.window)} for tasks {list(self.tasks)}"
        )


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[")


def evaluate(rule: TaskRateRule, store: FactStore, now: float) -> list[Sample]:
    """The rate over the last `window` (exact to one bucket width) per matching task name."""
    slot = COUNTERS.index(rule.event)
    window, threshold = rule.window, rule.threshold
    # A window that reaches back before sentinel started holds less than it should: a low rate
    # there says nothing yet, a high one already is one.
    started = store.started_at
    full = started is None or now - started >= window
    samples: list[Sample] = []
    seen: set[str] = set()
    for name, series in matching_tasks(store, rule.tasks):
        seen.add(name)
        rate = store.window_counts(series, window, now)[slot] / window
        samples.append(Sample({"task": name}, rate, threshold, _verdict(rule, rate, full)))
    if rule.below is not None:
        for name in rule.tasks:
            if _literal(name) and name not in seen:
                samples.append(Sample({"task": name}, 0.0, threshold, _verdict(rule, 0.0, full)))
    return samples


def _verdict(rule: TaskRateRule, rate: float, full: bool) -> bool | None:
    if rule.above is not None:
        return rate > rule.above
    if rate < rule.threshold:
        return True if full else None
    return False


SUMMARY = (
    "Task {{ labels.task }}: {{ value|number }} {{ event }} events/s over {{ window }}"
    " (threshold {{ threshold|number }}/s)"
)

KIND = RuleKind(kind="task_rate", evaluate=evaluate, schema=TaskRateRule, summary=SUMMARY)
