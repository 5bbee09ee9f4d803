from __future__ import annotations

from sentinel.config import QueueBacklogRule
from sentinel.facts.store import FactStore
from sentinel.model import Sample
from sentinel.rules.base import matching


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
