"""Scrape-time Prometheus collectors: sentinel's own health and celery-exporter's metrics.

Nothing is counted twice: every value is read from the fact store, the alert book and the
sender when Prometheus scrapes, so a series exists exactly as long as its source does. A worker
pruned from the store simply stops being reported, with no series to delete by hand.

Celery metric names follow danihodovic/celery-exporter so its dashboards and alerts keep
working; the labels are the subset our facts carry (see SentinelCollector.celery).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sentinel.model import State
from sentinel.store.facts import HISTOGRAM_BOUNDS
from sentinel.store.windows import COUNTERS

if TYPE_CHECKING:
    from sentinel.app import Sentinel

log = logging.getLogger("sentinel.metrics")

OUTCOMES = ("success", "retry", "failed", "dropped")
_LE = [floatToGoString(b) for b in HISTOGRAM_BOUNDS] + ["+Inf"]

_COUNTER_HELP = {
    "sent": "Sent when a task message is published.",
    "received": "Sent when the worker receives a task.",
    "started": "Sent just before the worker executes the task.",
    "succeeded": "Sent if the task executed successfully.",
    "failed": "Sent if the execution of the task failed.",
    "retried": "Sent if the task failed, but will be retried in the future.",
    "revoked": "Sent if the task has been revoked.",
    "rejected": "The task was rejected by the worker, possibly to be re-queued or moved to a "
    "dead letter queue.",
}


class SentinelCollector(Collector):
    def __init__(self, sentinel: Sentinel) -> None:
        self.sentinel = sentinel

    def describe(self) -> Iterator[Metric]:
        # Empty families let the registry refuse a duplicate name at register() time
        # without running a full scrape.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        self._fill(families)
        yield from families

    # -- families -------------------------------------------------------------------------

    def _families(self) -> list[Metric]:
        return [
            CounterMetricFamily(
                "sentinel_events", "Celery events ingested, by event type.", labels=["type"]
            ),
            CounterMetricFamily(
                "sentinel_events_dropped",
                "Celery events or series dropped: a cap reached, malformed, unknown task.",
                labels=["reason"],
            ),
            GaugeMetricFamily("sentinel_alerts", "Current alerts, by state.", labels=["state"]),
            CounterMetricFamily(
                "sentinel_notifications",
                "Notification delivery attempts, by channel and outcome.",
                labels=["channel", "outcome"],
            ),
            GaugeMetricFamily(
                "sentinel_outbox_pending", "Notifications decided but not yet delivered."
            ),
            GaugeMetricFamily(
                "sentinel_rule_evaluation_seconds",
                "Duration of the last evaluation of all rules.",
            ),
            CounterMetricFamily("sentinel_rule_errors", "Rule evaluations that raised an error."),
            GaugeMetricFamily(
                "sentinel_last_collection_timestamp_seconds",
                "When each collector last succeeded (events: when the last event arrived).",
                labels=["source"],
            ),
            *(
                CounterMetricFamily(f"celery_task_{c}", _COUNTER_HELP[c], labels=["name"])
                for c in COUNTERS
            ),
            GaugeMetricFamily(
                "celery_worker_up",
                "Indicates if a worker has recently sent a heartbeat.",
                labels=["hostname"],
            ),
            GaugeMetricFamily(
                "celery_worker_tasks_active",
                "The number of tasks the worker is currently processing.",
                labels=["hostname"],
            ),
            GaugeMetricFamily(
                "celery_queue_length",
                "The number of messages in the broker queue.",
                labels=["queue_name"],
            ),
            HistogramMetricFamily(
                "celery_task_runtime", "Histogram of task runtime measurements.", labels=["name"]
            ),
            HistogramMetricFamily(
                "celery_task_queue_wait_time",
                "Histogram of the time tasks spend waiting in the queue before being executed.",
                labels=["name"],
            ),
        ]

    # -- values ---------------------------------------------------------------------------

    def _fill(self, families: list[Metric]) -> None:
        by_name = {f.name: f for f in families}
        sentinel = self.sentinel
        now = sentinel.clock.now()
        store = sentinel.store

        # Copy under the lock, format outside it: the event thread waits on this lock.
        with store.lock:
            events = dict(store.events_by_type)
            drops = store.drops.as_dict()
            collected = {s: p.ok_at for s, p in store.probes.items() if s != "events"}
            collected["events"] = store.last_event_at
            tasks = [
                (name, list(s.totals), list(s.histograms[0]), list(s.histograms[1]))
                for name, s in store.tasks.items()
            ]
            workers = [(h, w.alive(now), w.active) for h, w in store.workers.items()]
            queues = [(q.name, q.depth) for q in store.queues.values()]

        for kind, n in sorted(events.items()):
            by_name["sentinel_events"].add_metric([kind], n)
        for reason, n in sorted(drops.items()):
            by_name["sentinel_events_dropped"].add_metric([reason], n)
        for source, at in sorted(collected.items()):
            if at is not None:
                by_name["sentinel_last_collection_timestamp_seconds"].add_metric([source], at)

        book = sentinel.book
        states = [a.state for a in list(book.alerts.values())]
        for state in (State.PENDING, State.FIRING):
            by_name["sentinel_alerts"].add_metric([state.value], states.count(state))
        by_name["sentinel_rule_evaluation_seconds"].add_metric([], book.last_duration)
        by_name["sentinel_rule_errors"].add_metric([], book.rule_errors)

        sender = sentinel.sender
        # Every configured channel x outcome from the start, so rate() sees the first failure.
        outcomes = dict.fromkeys(((c, o) for c in sentinel.config.channels for o in OUTCOMES), 0)
        if sender is not None:
            outcomes.update(dict(sender.outcomes))
            try:
                pending: int | None = sender.outbox.count()
            except (
                sqlite3.Error
            ) as e:  # storage closed during shutdown: omit, don't fail the scrape
                log.debug("outbox count unavailable: %s", e)
                pending = None
            if pending is not None:
                by_name["sentinel_outbox_pending"].add_metric([], pending)
        for (channel, outcome), n in sorted(outcomes.items()):
            by_name["sentinel_notifications"].add_metric([channel, outcome], n)

        for name, totals, runtime, queue_wait in sorted(tasks):
            for i, counter in enumerate(COUNTERS):
                by_name[f"celery_task_{counter}"].add_metric([name], totals[i])
            for family, hist in (
                ("celery_task_runtime", runtime),
                ("celery_task_queue_wait_time", queue_wait),
            ):
                _add_histogram(cast(HistogramMetricFamily, by_name[family]), name, hist)

        for hostname, alive, active in sorted(workers):
            by_name["celery_worker_up"].add_metric([hostname], 1 if alive else 0)
            # A dead worker's last heartbeat count is history, not work in progress.
            by_name["celery_worker_tasks_active"].add_metric([hostname], active if alive else 0)

        for queue, depth in sorted(queues, key=lambda q: q[0]):
            # A failed probe is a gap, not an empty queue: no sample rather than a 0.
            if depth is not None:
                by_name["celery_queue_length"].add_metric([queue], depth)


def _add_histogram(family: HistogramMetricFamily, name: str, hist: list[float]) -> None:
    """hist: per-bound counts (the +Inf bucket last), then the sum; Prometheus wants cumulative."""
    counts, total = hist[:-1], hist[-1]
    if not any(counts):
        return  # a task only ever sent (by a producer) has no latency to show
    buckets: list[tuple[str, float]] = []
    running = 0.0
    for le, n in zip(_LE, counts, strict=True):
        running += n
        buckets.append((le, running))
    family.add_metric([name], buckets, total)
