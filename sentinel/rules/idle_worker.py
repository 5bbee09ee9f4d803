from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.fields import Globs, PositiveWait
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matches
from sentinel.units import format_duration


class IdleWorkerRule(RuleBase):
    kind: Literal["idle_worker"]
    workers: Globs = ("*",)
    idle_for: PositiveWait

    def describe(self) -> str:
        return f"live worker with no task started for {format_duration(self.idle_for)}"


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


SUMMARY = "Worker {{ labels.worker }} has started no task for {{ value|duration }}"

KIND = RuleKind(
    kind="idle_worker",
    evaluate=evaluate,
    schema=IdleWorkerRule,
    summary=SUMMARY,
    unit="seconds",
    liveness=True,
)
