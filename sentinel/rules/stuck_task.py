"""stuck_task: tasks started and not finished for `running_for`, per task name.

The running tasks are confirmed by every `inspect active` round (facts/running.py): a task whose
`task-succeeded` was lost leaves the map at the next round whose reply no longer lists it, and
a task whose worker died is lost (lost_task), not stuck.
"""

from __future__ import annotations

from typing import Literal

from sentinel.facts.running import Running
from sentinel.facts.store import FactStore
from sentinel.fields import Globs, PositiveWait
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matches
from sentinel.units import format_duration

SHOWN = 5  # task ids named in the alert


class StuckTaskRule(RuleBase):
    kind: Literal["stuck_task"]
    tasks: Globs = ("*",)
    running_for: PositiveWait

    def describe(self) -> str:
        running_for = format_duration(self.running_for)
        return f"task running longer than {running_for}, tasks {list(self.tasks)}"


def stuck(
    store: FactStore, rule: StuckTaskRule, now: float
) -> dict[str, list[tuple[str, Running]]]:
    """Task name -> its stuck tasks (id, entry), oldest first. Call with store.lock held."""
    running = store.running
    running.sweep(lambda w: (worker := store.workers.get(w)) is not None and worker.alive(now), now)
    out: dict[str, list[tuple[str, Running]]] = {}
    # Insertion order is start order, so the stuck ones are a prefix: the walk stops at the
    # first task that has not run long enough (a start re-inserted keeps this true).
    cutoff = now - rule.running_for
    for uuid, entry in running.running.items():
        if entry.started_at > cutoff:
            break
        if matches(entry.name, rule.tasks):
            out.setdefault(entry.name, []).append((uuid, entry))
    return out


def evaluate(rule: StuckTaskRule, store: FactStore, now: float) -> list[Sample]:
    """One sample per task name with a stuck task: the oldest one's age in seconds, and up to
    SHOWN of them as `id on worker` (annotation `task_ids`). A name with none has no sample,
    so its alert resolves once its stuck tasks finish or are forgotten."""
    samples = []
    for name, tasks in stuck(store, rule, now).items():
        age = now - tasks[0][1].started_at
        ids = ", ".join(f"{uuid} on {entry.worker}" for uuid, entry in tasks[:SHOWN])
        more = f" and {len(tasks) - SHOWN} more" if len(tasks) > SHOWN else ""
        samples.append(
            Sample({"task": name}, age, rule.running_for, True, detail={"task_ids": ids + more})
        )
    return samples


SUMMARY = (
    "Task {{ labels.task }} has been running for {{ value|duration }}"
    " (longer than {{ running_for }})"
)

KIND = RuleKind(
    kind="stuck_task",
    evaluate=evaluate,
    schema=StuckTaskRule,
    summary=SUMMARY,
    unit="seconds",
    liveness=True,  # a worker's death turns its stuck tasks into lost ones
)
