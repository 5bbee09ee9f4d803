"""lost_task: tasks that started on a worker which then died (its heartbeats expired, or it
went offline while they ran) and have not finished anywhere since, counted per task name over
the window (facts/running.py says what is lost and what clears it)."""

from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.fields import Globs, Window
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matches
from sentinel.units import format_duration

SHOWN = 5  # task ids named in the alert


class LostTaskRule(RuleBase):
    kind: Literal["lost_task"]
    tasks: Globs = ("*",)
    window: Window = 3600.0

    def describe(self) -> str:
        return (
            f"task lost with its worker in the last {format_duration(self.window)},"
            f" tasks {list(self.tasks)}"
        )


def evaluate(rule: LostTaskRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per task name with a lost task in the window: how many. A name with none
    has no sample: its alert resolves once they finish elsewhere or leave the window."""
    running = store.running
    running.sweep(lambda w: (worker := store.workers.get(w)) is not None and worker.alive(now), now)
    since = now - rule.window
    lost: dict[str, list[str]] = {}
    for uuid, entry in running.lost.items():
        if entry.lost_at >= since and matches(entry.name, rule.tasks):
            lost.setdefault(entry.name, []).append(f"{uuid} on {entry.worker}")
    samples = []
    for name, ids in lost.items():
        shown = ", ".join(ids[:SHOWN]) + (
            f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
        )
        samples.append(
            Sample({"task": name}, float(len(ids)), 0.0, True, detail={"task_ids": shown})
        )
    return samples


SUMMARY = (
    "{{ value|number }} {{ labels.task }} task(s) were lost with the worker running them"
    " in the last {{ window }}"
)

KIND = RuleKind(
    kind="lost_task",
    evaluate=evaluate,
    schema=LostTaskRule,
    summary=SUMMARY,
    liveness=True,  # a worker's death is the moment its tasks are lost
    reads_rings=False,
)
