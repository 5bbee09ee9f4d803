"""When each worker name came back after going away: the facts behind worker_flapping.

A worker name comes back when a `worker-online` arrives for a name sentinel already knew (a
worker sends it only when it starts), or a heartbeat arrives for one whose heartbeats had
expired (it was killed and restarted faster than sentinel saw an online event, or it hung and
recovered). A worker seen for the first time has not restarted.

Each name keeps its most recent MAX_PER_WORKER times, and the names are capped (the workers'
cap): memory is bounded whatever a crash-looping deployment does.
"""

from __future__ import annotations

from collections import deque

from sentinel.facts.drops import Drops

MAX_PER_WORKER = 64  # more restarts than any `restarts:` threshold may ask for


class Restarts:
    def __init__(self, *, max_workers: int = 2_000, drops: Drops | None = None) -> None:
        self.drops = drops if drops is not None else Drops()
        self.max_workers = max_workers
        self.times: dict[str, deque[float]] = {}

    def came_back(self, worker: str, now: float) -> None:
        times = self.times.get(worker)
        if times is None:
            if len(self.times) >= self.max_workers:
                self.drops.restarts += 1
                return
            times = self.times[worker] = deque(maxlen=MAX_PER_WORKER)
        times.append(now)

    def count(self, worker: str, window: float, now: float) -> int:
        times = self.times.get(worker)
        if not times:
            return 0
        since = now - window
        return sum(1 for t in times if t > since)

    def prune(self, now: float, retention: float) -> None:
        """Forget restarts older than the retention (the longest rule window)."""
        for worker in list(self.times):
            times = self.times[worker]
            while times and now - times[0] > retention:
                times.popleft()
            if not times:
                del self.times[worker]
