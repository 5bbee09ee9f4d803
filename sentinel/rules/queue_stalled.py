"""queue_stalled: messages wait, live workers consume the queue, and nothing has been taken from
it for `stalled_for` (celery#8917: workers alive and heartbeating that take nothing).

Consumers here are the live workers listing the queue in `inspect active_queues` (on every
broker). Unlike a backlog, a busy queue that keeps moving is not stalled however deep it is: any
decrease of its depth, or any task received by a worker consuming it, moves it
(facts/queue_flow.py). A queue with no live consumer is queue_unconsumed, not stalled.
"""

from __future__ import annotations

from typing import Literal

from sentinel.facts.queue_flow import consumed
from sentinel.facts.store import FactStore
from sentinel.fields import Globs, PositiveWait
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching
from sentinel.units import format_duration


class QueueStalledRule(RuleBase):
    kind: Literal["queue_stalled"]
    queues: Globs = ("*",)
    stalled_for: PositiveWait = 300.0

    def describe(self) -> str:
        return (
            f"messages waiting, consumers live, nothing taken for "
            f"{format_duration(self.stalled_for)}, queues {list(self.queues)}"
        )


def evaluate(rule: QueueStalledRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per measured queue: seconds it has waited with a consumer and moved not."""
    samples = []
    for name in matching(store.queues, rule.queues):
        q = store.queues[name]
        if q.depth is None:
            samples.append(Sample({"queue": name}, None, rule.stalled_for, None))
            continue
        if q.depth == 0:
            samples.append(Sample({"queue": name}, 0.0, rule.stalled_for, False))
            continue
        # Live workers listing the queue, whatever the broker counts: a SIGSTOPped worker keeps
        # its RabbitMQ consumer but stops heartbeating, and that is a dead worker, not a stall.
        served = consumed(name, None, store.workers, store.inspect_ok(), now)
        stalled = store.flows.stalled_for(name, now)
        if served is None:
            samples.append(Sample({"queue": name}, stalled, rule.stalled_for, None))
        elif not served or stalled is None:
            samples.append(Sample({"queue": name}, 0.0, rule.stalled_for, False))
        else:
            samples.append(
                Sample({"queue": name}, stalled, rule.stalled_for, stalled >= rule.stalled_for)
            )
    return samples


SUMMARY = (
    "Queue {{ labels.queue }} has messages waiting and live consumers, but nothing was taken"
    " from it for {{ value|duration }}"
)

KIND = RuleKind(
    kind="queue_stalled",
    evaluate=evaluate,
    schema=QueueStalledRule,
    summary=SUMMARY,
    unit="seconds",
)
