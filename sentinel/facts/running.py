"""Tasks running on a worker now, and tasks lost with the worker they ran on.

A task is running from its `task-started` event (or from an `inspect active` reply that lists
it, when that event was lost) until it finishes. Two ways out besides finishing:

- an `inspect active` round in which its worker answered without it: it finished and the
  event saying so was lost (Celery's "STARTED forever"), so it is forgotten, not stuck;
- its worker died (heartbeats expired, or `worker-offline` while it still ran): it is lost.

A lost task stays lost until a finish of the same id arrives from anywhere (with `acks_late`
the broker redelivers it and it may run again), or until it is older than the retention.
Only started tasks are lost: one a worker had merely reserved was never acknowledged, so the
broker gives it to another worker and nothing of it is lost.

Both maps are in insertion order (start time, death time) and capped: past the cap the oldest
entry goes and is counted (Celery's `State(max_tasks_in_memory=)`), so memory is bounded by
configuration whatever happens to the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sentinel.facts.drops import Drops


@dataclass(slots=True)
class Running:
    name: str
    worker: str
    started_at: float  # on sentinel's clock (a worker's clock may be off)


@dataclass(slots=True)
class Lost:
    name: str
    worker: str
    started_at: float
    lost_at: float


class RunningTasks:
    def __init__(
        self, *, max_running: int = 100_000, max_lost: int = 10_000, drops: Drops | None = None
    ) -> None:
        self.drops = drops if drops is not None else Drops()
        self.max_running = max_running
        self.max_lost = max_lost
        self.running: dict[str, Running] = {}
        self.lost: dict[str, Lost] = {}
        # worker -> its running task ids (a dict: ordered, O(1) removal), so a death moves only
        # that worker's tasks and a sweep costs one lookup per worker.
        self.by_worker: dict[str, dict[str, None]] = {}
        self.confirmed_finished = 0  # forgotten because inspect no longer listed them

    def __len__(self) -> int:
        return len(self.running)

    # -- what events say -----------------------------------------------------------------

    def started(self, uuid: str, name: str, worker: str, now: float) -> None:
        if uuid in self.running:
            self._forget(uuid)  # started again (a retry, a redelivery): its new start counts
        elif len(self.running) >= self.max_running:
            self._forget(next(iter(self.running)))
            self.drops.running += 1
        self.running[uuid] = Running(name, worker, now)
        self.by_worker.setdefault(worker, {})[uuid] = None

    def finished(self, uuid: str) -> None:
        """Succeeded, failed, retried, revoked or rejected: on any worker, it is not lost."""
        if uuid in self.running:
            self._forget(uuid)
        self.lost.pop(uuid, None)

    def worker_offline(self, worker: str, now: float) -> None:
        """A `worker-offline`: whatever it still ran has died with it (a warm shutdown waits
        for its tasks, so these were cut short)."""
        self._lose(worker, now)

    def _forget(self, uuid: str) -> Running:
        entry = self.running.pop(uuid)
        ids = self.by_worker.get(entry.worker)
        if ids is not None:
            ids.pop(uuid, None)
            if not ids:
                del self.by_worker[entry.worker]
        return entry

    def _lose(self, worker: str, now: float) -> None:
        for uuid in list(self.by_worker.pop(worker, ())):
            entry = self.running.pop(uuid)
            if len(self.lost) >= self.max_lost:
                del self.lost[next(iter(self.lost))]
                self.drops.lost += 1
            self.lost[uuid] = Lost(entry.name, entry.worker, entry.started_at, now)

    # -- what sentinel sees of the workers -------------------------------------------------

    def sweep(self, alive: Callable[[str], bool], now: float) -> None:
        """Move the tasks of every worker that is no longer alive to lost. Idempotent: the
        rules that read these maps call it first, so a death counts at the evaluation that
        first sees it."""
        for worker in [w for w in self.by_worker if not alive(w)]:
            self._lose(worker, now)

    def confirm(
        self, worker: str, active: Iterable[dict[str, Any]], asked_at: float, now: float
    ) -> None:
        """One worker's `inspect active` reply, from a round that started at asked_at.

        A task sentinel has as running on this worker but the worker does not list is gone
        (its finishing event was lost), unless it started after the question went out. A
        task it lists that sentinel missed the start of is running from its `time_start`.
        """
        listed: dict[str, dict[str, Any]] = {}
        for task in active:
            uuid = task.get("id")
            if isinstance(uuid, str) and 0 < len(uuid) <= 512:
                listed[uuid] = task
        for uuid in list(self.by_worker.get(worker, ())):
            if uuid not in listed and self.running[uuid].started_at < asked_at:
                self._forget(uuid)
                self.confirmed_finished += 1
        added = False
        for uuid, task in listed.items():
            if uuid in self.running or uuid in self.lost:
                continue
            name = task.get("name")
            if not isinstance(name, str) or not 0 < len(name) <= 512:
                continue
            start = task.get("time_start")
            # The worker's clock, bounded by ours: never in the future, never before a day.
            when = float(start) if isinstance(start, int | float) else now
            self.started(uuid, name, worker, min(now, max(now - 86_400.0, when)))
            added = True
        if added:
            # Started in the past, inserted now: restore start order (stuck_task walks a
            # prefix). Rare: only when task-started events were lost.
            self.running = dict(sorted(self.running.items(), key=lambda kv: kv[1].started_at))

    def prune(self, now: float, retention: float) -> None:
        """Forget lost tasks older than the retention (the longest rule window)."""
        lost = self.lost
        while lost:
            uuid = next(iter(lost))
            if now - lost[uuid].lost_at <= retention:
                break
            del lost[uuid]
