"""Whether each queue moves: the facts behind queue_stalled and queue_unconsumed.

A queue is taken from when its depth went down between two measurements, or when a worker
that consumes it received a task (Celery's task events do not name the queue a task came
from; a worker consuming several queues credits them all, so a stall of one queue of such a
worker shows only once it takes nothing at all, which is the case of celery#8917). A queue
waits from the first measurement that found messages in it until one finds it empty; it is
served from the first measurement at which a live consumer took from it, since it last had
none (so a consumer that just appeared is not already stalled).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sentinel.facts.drops import Drops
from sentinel.facts.workers import WorkerState


@dataclass(slots=True)
class Flow:
    depth: int | None = None  # at the previous measurement
    waiting_since: float | None = None
    taken_at: float | None = None
    served_since: float | None = None


class QueueFlows:
    def __init__(self, *, max_queues: int = 2_000, drops: Drops | None = None) -> None:
        self.drops = drops if drops is not None else Drops()
        self.max_queues = max_queues
        self.flows: dict[str, Flow] = {}

    def _flow(self, queue: str) -> Flow | None:
        flow = self.flows.get(queue)
        if flow is None:
            if len(self.flows) >= self.max_queues:
                self.drops.queue_flows += 1
                return None
            flow = self.flows[queue] = Flow()
        return flow

    def measured(self, queue: str, depth: int | None, served: bool | None, now: float) -> None:
        flow = self._flow(queue)
        if flow is None:
            return
        if depth is not None:
            if flow.depth is not None and depth < flow.depth:
                flow.taken_at = now
            if depth == 0:
                flow.waiting_since = None
            elif flow.waiting_since is None:
                flow.waiting_since = now
            flow.depth = depth
        if served is False:
            flow.served_since = None
        elif served and flow.served_since is None:
            flow.served_since = now

    def taken(self, queues: tuple[str, ...], now: float) -> None:
        """A worker consuming these queues received a task."""
        for queue in queues:
            flow = self.flows.get(queue)
            if flow is not None:
                flow.taken_at = now

    def stalled_for(self, queue: str, now: float) -> float | None:
        """Seconds messages have waited with a consumer and nothing taken; None when the queue
        is not waiting or not served."""
        flow = self.flows.get(queue)
        if flow is None or flow.waiting_since is None or flow.served_since is None:
            return None
        since = max(flow.waiting_since, flow.served_since, flow.taken_at or 0.0)
        return max(0.0, now - since)

    def forget(self, keep: set[str]) -> None:
        for queue in [q for q in self.flows if q not in keep]:
            del self.flows[queue]


def consumed(
    queue: str,
    consumers: int | None,
    workers: Mapping[str, WorkerState],
    inspect_ok: bool,
    now: float,
) -> bool | None:
    """Whether a live consumer takes from the queue; None when sentinel cannot tell.

    On RabbitMQ the broker counts the consumers (passive declare). Elsewhere it is the live
    workers that list the queue in `inspect active_queues` (inspect_ok: a round has worked).
    """
    if consumers is not None:
        return consumers > 0
    if not inspect_ok:
        return None  # no active_queues answer to go by
    unknown = False
    for worker in workers.values():
        if not worker.alive(now):
            continue
        if queue in worker.queues:
            return True
        # A live worker that has not answered active_queues yet may be the consumer.
        unknown = unknown or not worker.queues
    return None if unknown else False
