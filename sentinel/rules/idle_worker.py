from __future__ import annotations

from sentinel.config import IdleWorkerRule
from sentinel.facts.store import FactStore
from sentinel.model import Sample
from sentinel.rules.base import matches


def evaluate(rule: IdleWorkerRule, store: FactStore, now: float) -> list[Sample]:
    """Seconds since each live worker last did something; dead workers are not idle, just dead."""
    samples = []
    for worker in store.workers.values():
        if not matches(worker.hostname, rule.workers) or not worker.alive(now):
            continue
        idle = 0.0 if worker.active > 0 else max(0.0, now - worker.last_activity)
        samples.append(
            Sample({"worker": worker.hostname}, idle, rule.idle_for, idle >= rule.idle_for)
        )
    return samples
