from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.fields import Globs, MessageCount
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching


class QueueBacklogRule(RuleBase):
    kind: Literal["queue_backlog"]
    queues: Globs = ("*",)
    threshold: MessageCount

    def describe(self) -> str:
        return f"queue depth > {self.threshold} for queues {list(self.queues)}"


def evaluate(rule: QueueBacklogRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per measured queue; a queue whose depth could not be read has no verdict."""
    samples = []
    for name in matching(store.queues, rule.queues):
        q = store.queues[name]
        if q.depth is None:
            samples.append(Sample({"queue": name}, None, float(rule.threshold), None))
        else:
            samples.append(
                Sample(
                    {"queue": name}, float(q.depth), float(rule.threshold), q.depth > rule.threshold
                )
            )
    return samples


SUMMARY = (
    "Queue {{ labels.queue }} has {{ value|number }} messages waiting"
    " (threshold {{ threshold|number }})"
)

KIND = RuleKind(
    kind="queue_backlog",
    evaluate=evaluate,
    schema=QueueBacklogRule,
    summary=SUMMARY,
)
