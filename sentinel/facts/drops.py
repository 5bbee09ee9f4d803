"""What the facts left out, by reason: whole events or entries dropped, and numbers ignored."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Drops:
    task_names: int = 0
    workers: int = 0
    queues: int = 0
    inflight: int = 0
    label_sets: int = 0  # task metrics not kept past max_metric_label_sets (the event counted)
    malformed: int = 0
    unknown_task: int = 0
    buckets: int = 0  # time buckets forgotten early to stay within max_window_bytes
    refused: int = 0  # messages with a body Celery never sends: compressed, not JSON
    oversize: int = 0  # messages larger than the collector's body limit
    error: int = 0  # an event whose application raised something unexpected (a bug)
    # The Celery-native kinds' maps (facts/running.py, restarts.py, queue_flow.py, ...).
    running: int = 0
    lost: int = 0
    restarts: int = 0
    queue_flows: int = 0
    periodic: int = 0
    coverage: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "task_series_cap": self.task_names,
            "worker_cap": self.workers,
            "queue_cap": self.queues,
            "inflight_cap": self.inflight,
            "metric_label_cap": self.label_sets,
            "malformed": self.malformed,
            "unknown_task": self.unknown_task,
            "window_budget": self.buckets,
            "refused": self.refused,
            "oversize": self.oversize,
            "error": self.error,
            "running_cap": self.running,
            "lost_cap": self.lost,
            "restart_cap": self.restarts,
            "queue_flow_cap": self.queue_flows,
            "periodic_cap": self.periodic,
            "coverage_cap": self.coverage,
        }

    def per_event(self) -> int:
        """Events (or messages) dropped whole, each under exactly one reason: with the accepted
        events (events_by_type) they add up to everything the stream delivered. The other
        reasons count evictions and refusals that are not events."""
        return (
            self.task_names
            + self.workers
            + self.malformed
            + self.unknown_task
            + self.refused
            + self.oversize
            + self.error
        )


@dataclass(slots=True)
class IgnoredFields:
    """Numbers that were read but could not be true: the event counted, the number unused."""

    timestamp: int = 0
    runtime: int = 0
    freq: int = 0
    active: int = 0
    processed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "timestamp": self.timestamp,
            "runtime": self.runtime,
            "freq": self.freq,
            "active": self.active,
            "processed": self.processed,
        }
