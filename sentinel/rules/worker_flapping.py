"""worker_flapping: one worker name came back after going away `restarts` times within the
window (a crash loop, an OOM kill and restart, a liveness probe killing it), per worker
(facts/restarts.py says what counts as coming back)."""

from __future__ import annotations

from typing import Literal

from sentinel.facts.restarts import MAX_PER_WORKER
from sentinel.facts.store import FactStore
from sentinel.fields import Globs, Window, count
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching
from sentinel.units import format_duration


class WorkerFlappingRule(RuleBase):
    kind: Literal["worker_flapping"]
    workers: Globs = ("*",)
    restarts: count(MAX_PER_WORKER, positive=True) = 3  # type: ignore[valid-type]
    window: Window = 600.0

    def describe(self) -> str:
        return f"worker restarted {self.restarts}+ times in {format_duration(self.window)}"


def evaluate(rule: WorkerFlappingRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per worker name that restarted in the window: how many times."""
    restarts = store.restarts
    samples = []
    for name in matching(restarts.times, rule.workers):
        n = restarts.count(name, rule.window, now)
        samples.append(Sample({"worker": name}, float(n), float(rule.restarts), n >= rule.restarts))
    return samples


SUMMARY = (
    "Worker {{ labels.worker }} restarted {{ value|number }} times in {{ window }}"
    " (threshold {{ threshold|number }})"
)

KIND = RuleKind(
    kind="worker_flapping",
    evaluate=evaluate,
    schema=WorkerFlappingRule,
    summary=SUMMARY,
    reads_rings=False,
)
