"""queue_unconsumed: messages wait on a queue that no live worker consumes (a deploy renamed the
queue, the workers for it were scaled to zero, a `-Q` typo).

Who consumes a queue: on RabbitMQ the broker says (the consumer count of a passive declare);
on Redis and the filesystem transport the broker cannot, so it is the live workers listing the
queue in `inspect active_queues`. Measured queues are `celery.queues`, those workers list, and
any queue last seen holding messages.
"""

from __future__ import annotations

from typing import Literal

from sentinel.facts.queue_flow import consumed
from sentinel.facts.store import FactStore
from sentinel.fields import Globs
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching


class QueueUnconsumedRule(RuleBase):
    kind: Literal["queue_unconsumed"]
    queues: Globs = ("*",)

    def describe(self) -> str:
        return f"messages waiting and no live consumer, for queues {list(self.queues)}"


def evaluate(rule: QueueUnconsumedRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per measured queue: its depth; true while messages wait and none consumes."""
    samples = []
    for name in matching(store.queues, rule.queues):
        q = store.queues[name]
        if q.depth is None:
            samples.append(Sample({"queue": name}, None, 0.0, None))
            continue
        verdict = (
            False
            if q.depth == 0
            else _negate(consumed(name, q.consumers, store.workers, store.inspect_ok(), now))
        )
        samples.append(Sample({"queue": name}, float(q.depth), 0.0, verdict))
    return samples


def _negate(v: bool | None) -> bool | None:
    return None if v is None else not v


SUMMARY = "Queue {{ labels.queue }} has {{ value|number }} messages waiting and no live consumer"

KIND = RuleKind(
    kind="queue_unconsumed",
    evaluate=evaluate,
    schema=QueueUnconsumedRule,
    summary=SUMMARY,
    liveness=True,  # the last consumer dying is when it starts
)
