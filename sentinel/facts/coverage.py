"""How much of each worker's work sentinel saw: the facts behind events_missing.

A worker's periodic heartbeat says how many tasks it has started since it came up
(`processed`: Celery's `all_total_count`, counted when a task is accepted); sentinel counts the
`task-started` events that reached it from the same worker. Checkpoints of both, at most one
every STEP seconds, answer "what fraction of the work in the last window did sentinel not
see": a Redis subscriber dropped for being slow, or a RabbitMQ event queue that expired, shows
as that fraction growing while the heartbeats (a few bytes every 2 s) still arrive.

Per worker at most MAX_CHECKPOINTS, and as many workers as the workers' cap.
"""

from __future__ import annotations

from collections import deque

from sentinel.facts.drops import Drops

STEP = 5.0
MAX_CHECKPOINTS = 121  # 10 minutes at STEP: the longest events_missing window
LONGEST_WINDOW = STEP * (MAX_CHECKPOINTS - 1)


class WorkerCoverage:
    __slots__ = ("checkpoints", "latest", "seen")

    def __init__(self) -> None:
        self.seen = 0  # task-started events from this worker
        # (when, processed, seen): at least STEP apart, and as of the latest heartbeat.
        self.checkpoints: deque[tuple[float, int, int]] = deque(maxlen=MAX_CHECKPOINTS)
        self.latest: tuple[float, int, int] | None = None


class Coverage:
    def __init__(self, *, max_workers: int = 2_000, drops: Drops | None = None) -> None:
        self.drops = drops if drops is not None else Drops()
        self.max_workers = max_workers
        self.workers: dict[str, WorkerCoverage] = {}

    def _get(self, worker: str) -> WorkerCoverage | None:
        cov = self.workers.get(worker)
        if cov is None:
            if len(self.workers) >= self.max_workers:
                self.drops.coverage += 1
                return None
            cov = self.workers[worker] = WorkerCoverage()
        return cov

    def started(self, worker: str) -> None:
        """A task-started event from this worker. On every such event."""
        cov = self.workers.get(worker)
        if cov is not None:  # a worker gets an entry with its first heartbeat
            cov.seen += 1

    def heartbeat(self, worker: str, processed: int, now: float) -> None:
        cov = self._get(worker)
        if cov is None:
            return
        points = cov.checkpoints
        if points and processed < points[-1][1]:
            points.clear()  # the worker restarted: its count began again
        cov.latest = (now, processed, cov.seen)
        if not points or now - points[-1][0] >= STEP:
            points.append(cov.latest)

    def unseen(self, worker: str, window: float, now: float) -> tuple[float, int] | None:
        """(fraction of the tasks started in the window whose task-started sentinel missed,
        tasks started); None before a second heartbeat."""
        cov = self.workers.get(worker)
        if cov is None or cov.latest is None or not cov.checkpoints:
            return None
        points = cov.checkpoints
        if cov.latest is points[0]:
            return None
        first = points[0]
        for point in points:  # the last checkpoint at or before the window's start
            if point[0] > now - window:
                break
            first = point
        _, processed, seen = cov.latest
        done = processed - first[1]
        if done <= 0:
            return 0.0, 0
        return max(0.0, 1.0 - (seen - first[2]) / done), done

    def forget(self, keep: set[str]) -> None:
        for worker in [w for w in self.workers if w not in keep]:
            del self.workers[worker]
