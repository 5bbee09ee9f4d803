"""events_missing: sentinel is blind while the cluster works, per worker.

Two ways (facts/coverage.py):
- a worker answers `inspect ping` but no heartbeat reaches sentinel (events disabled:
  `worker_send_task_events` off, no `-E`, and `enable_events` refused or turned off in
  sentinel): the fraction unseen is 1;
- its heartbeats arrive and their `processed` count grows, but far fewer `task-started`
  events arrived from it over the window (events lost: Redis dropped the subscriber, a
  RabbitMQ event queue expired): the fraction it started that sentinel did not see.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from sentinel.facts.coverage import LONGEST_WINDOW
from sentinel.facts.store import FactStore
from sentinel.fields import Globs, Ratio, SampleCount, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matches
from sentinel.units import format_duration


class EventsMissingRule(RuleBase):
    kind: Literal["events_missing"]
    workers: Globs = ("*",)
    threshold: Ratio = 0.5  # fraction of a worker's started tasks whose events did not arrive
    window: Window = 300.0
    min_count: SampleCount = 20  # tasks started in the window before a fraction is a verdict

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError("must be >= 0% and < 100%")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v > LONGEST_WINDOW:
            raise ValueError(f"must be at most {format_duration(LONGEST_WINDOW)}")
        return v

    def describe(self) -> str:
        return (
            f"workers answering inspect with no events, or > {self.threshold:.0%} of task"
            f" events missing over {format_duration(self.window)}"
        )


def evaluate(rule: EventsMissingRule, store: FactStore, now: float) -> list[Sample]:
    samples = []
    for worker in store.workers.values():
        if not matches(worker.hostname, rule.workers) or not worker.alive(now):
            continue
        labels = {"worker": worker.hostname}
        beating = worker.heartbeat_at is not None and now < worker.heartbeat_at + 2 * worker.freq
        if not beating:  # alive by its ping answers alone
            samples.append(Sample(labels, 1.0, rule.threshold, True))
            continue
        seen = store.coverage.unseen(worker.hostname, rule.window, now)
        if seen is None:
            samples.append(Sample(labels, None, rule.threshold, None))
            continue
        fraction, started = seen
        verdict = fraction > rule.threshold if started >= rule.min_count else None
        samples.append(Sample(labels, fraction, rule.threshold, verdict if started else False))
    return samples


SUMMARY = (
    "sentinel did not see {{ value|percent }} of the work of worker {{ labels.worker }}:"
    " its task events do not arrive"
)

KIND = RuleKind(
    kind="events_missing",
    evaluate=evaluate,
    schema=EventsMissingRule,
    summary=SUMMARY,
    unit="percent",
    reads_rings=False,
)
