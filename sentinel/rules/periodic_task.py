"""periodic_task: a task name that should be sent at least every `every` (celery beat's
schedule) was not sent within `every + grace`, per task name.

`every` may come from the app's `beat_schedule` (`celery.app`) for names the rule gives none.
What was last seen survives a restart; facts/periodic.py states the rule for "sentinel just
started". Needs `task_send_sent_event = True` on the producer (beat) for task-sent events;
without them task-received (a worker took it) is the fallback, which also fires when no worker
takes the task.
"""

from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.fields import Globs, PositiveWait, Wait
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matching
from sentinel.units import format_duration


class PeriodicTaskRule(RuleBase):
    kind: Literal["periodic_task"]
    tasks: Globs
    every: PositiveWait | None = None  # None: from the app's beat_schedule
    grace: Wait = 60.0

    def describe(self) -> str:
        every = format_duration(self.every) if self.every else "its beat_schedule period"
        return (
            f"tasks {list(self.tasks)} sent at least every {every} (+{format_duration(self.grace)})"
        )


def literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[")


def periods(rule: PeriodicTaskRule, store: FactStore) -> dict[str, float]:
    """Task name -> its expected period, for every name the rule watches. Call with the lock."""
    periodic = store.periodic
    names = [p for p in rule.tasks if literal(p)]
    names += matching(periodic.names(), rule.tasks)
    out: dict[str, float] = {}
    for name in dict.fromkeys(names):
        every = rule.every if rule.every is not None else periodic.schedule.get(name)
        if every is not None:
            out[name] = every
    return out


def evaluate(rule: PeriodicTaskRule, store: FactStore, now: float) -> list[Sample]:
    """Seconds since each task was last sent (or since sentinel started), against every+grace."""
    periodic = store.periodic
    started = store.started_at if store.started_at is not None else now
    samples = []
    for name, every in periods(rule, store).items():
        limit = every + rule.grace
        periodic.watch(name, limit)
        age, overdue = periodic.overdue(name, limit, started, now)
        samples.append(Sample({"task": name}, max(0.0, age), limit, overdue))
    return samples


SUMMARY = (
    "Periodic task {{ labels.task }} was last sent {{ value|duration }} ago"
    " (expected at least every {{ threshold|duration }}, grace included)"
)

KIND = RuleKind(
    kind="periodic_task",
    evaluate=evaluate,
    schema=PeriodicTaskRule,
    summary=SUMMARY,
    unit="seconds",
)
