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
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sentinel.clock import Clock
from sentinel.config import Config
from sentinel.db.health import StorageHealth
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import HISTOGRAM_BOUNDS
from sentinel.facts.windows import COUNTERS
from sentinel.model import Alert, State


class Book(Protocol):
    @property
    def alerts(self) -> Mapping[str, Alert]: ...

    @property
    def last_duration(self) -> float: ...

    @property
    def rule_errors(self) -> int: ...

    @property
    def rule_errors_by_rule(self) -> Mapping[str, int]: ...


class Outbox(Protocol):
    def count(self) -> int: ...


class Delivery(Protocol):
    @property
    def outcomes(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def outbox(self) -> Outbox: ...


class Storage(Protocol):
    def health(self) -> StorageHealth: ...


class MetricsSource(Protocol):
    """What a scrape reads (app.py's Sentinel satisfies it, structurally; metrics imports
    nothing of the composition root)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> FactStore: ...

    @property
    def book(self) -> Book: ...

    @property
    def sender(self) -> Delivery | None: ...

    @property
    def db(self) -> Storage | None: ...


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


FAMILIES: list[tuple[type[Metric], str, str, list[str]]] = [
    (CounterMetricFamily, "sentinel_events", "Celery events ingested, by event type.", ["type"]),
    (
        CounterMetricFamily,
        "sentinel_events_dropped",
        "Celery events or series dropped: a cap reached, malformed, unknown task, a message "
        "refused (compressed, not JSON) or over the size limit.",
        ["reason"],
    ),
    (
        CounterMetricFamily,
        "sentinel_event_fields_ignored",
        "Numbers in accepted events that could not be true (inf, NaN, out of range), unused.",
        ["field"],
    ),
    (GaugeMetricFamily, "sentinel_alerts", "Current alerts, by state.", ["state"]),
    (
        CounterMetricFamily,
        "sentinel_notifications",
        "Notification delivery attempts, by channel and outcome.",
        ["channel", "outcome"],
    ),
    (
        GaugeMetricFamily,
        "sentinel_outbox_pending",
        "Notifications decided but not yet delivered.",
        [],
    ),
    (
        GaugeMetricFamily,
        "sentinel_rule_evaluation_seconds",
        "Duration of the last evaluation of all rules.",
        [],
    ),
    (CounterMetricFamily, "sentinel_rule_errors", "Rule evaluations that raised an error.", []),
    (
        CounterMetricFamily,
        "sentinel_rule_errors_by_rule",
        "Rule evaluations that raised an error, by rule (the other rules went on).",
        ["rule"],
    ),
    (
        GaugeMetricFamily,
        "sentinel_storage_healthy",
        "1 while the database holds the current state; 0 while it is kept in memory only.",
        [],
    ),
    (
        CounterMetricFamily,
        "sentinel_storage_errors",
        "Database failures (disk full, I/O error, file deleted or replaced).",
        [],
    ),
    (
        GaugeMetricFamily,
        "sentinel_last_collection_timestamp_seconds",
        "When each collector last succeeded (events: when the last event arrived).",
        ["source"],
    ),
    *((CounterMetricFamily, f"celery_task_{c}", _COUNTER_HELP[c], ["name"]) for c in COUNTERS),
    (
        GaugeMetricFamily,
        "celery_worker_up",
        "Indicates if a worker has recently sent a heartbeat.",
        ["hostname"],
    ),
    (
        GaugeMetricFamily,
        "celery_worker_tasks_active",
        "The number of tasks the worker is currently processing.",
        ["hostname"],
    ),
    (
        GaugeMetricFamily,
        "celery_queue_length",
        "The number of messages in the broker queue.",
        ["queue_name"],
    ),
    (
        HistogramMetricFamily,
        "celery_task_runtime",
        "Histogram of task runtime measurements.",
        ["name"],
    ),
    (
        HistogramMetricFamily,
        "celery_task_queue_wait_time",
        "Histogram of the time tasks spend waiting in the queue before being executed.",
        ["name"],
    ),
]


class SentinelCollector(Collector):
    def __init__(self, sentinel: MetricsSource) -> None:
        self.sentinel = sentinel

    def describe(self) -> Iterator[Metric]:
        # Empty families let the registry refuse a duplicate name at register() time
        # without running a full scrape.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        # One family at a time: a filled family is dropped as soon as the exposition has
        # formatted it, so a scrape over 10,000 task names never holds every sample at once.
        snapshot = self._snapshot()
        for family in self._families():
            self._fill(family, snapshot)
            yield family

    # -- families -------------------------------------------------------------------------

    def _families(self) -> Iterator[Metric]:
        """The families in exposition order, each made only when the caller asks for it."""
        for cls, name, documentation, labels in FAMILIES:
            yield cls(name, documentation, labels=labels)

    # -- values ---------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        """Everything a scrape reports, copied under the store lock (the event thread waits on
        it) and formatted outside it."""
        sentinel = self.sentinel
        now = sentinel.clock.now()
        store = sentinel.store
        with store.lock:
            events = dict(store.events_by_type)
            drops = store.drops.as_dict()
            ignored = store.ignored.as_dict()
            collected = {s: p.ok_at for s, p in store.probes.items() if s != "events"}
            collected["events"] = store.last_event_at
            tasks = sorted(
                (name, list(s.totals), list(s.histograms[0]), list(s.histograms[1]))
                for name, s in store.tasks.items()
            )
            workers = sorted((h, w.alive(now), w.active) for h, w in store.workers.items())
            queues = sorted((q.name, q.depth) for q in store.queues.values())

        book = sentinel.book
        states = [a.state for a in list(book.alerts.values())]
        sender = sentinel.sender
        # Every configured channel x outcome from the start, so rate() sees the first failure.
        outcomes = dict.fromkeys(((c, o) for c in sentinel.config.channels for o in OUTCOMES), 0)
        pending: int | None = None
        if sender is not None:
            outcomes.update(dict(sender.outcomes))
            try:
                pending = sender.outbox.count()
            except sqlite3.Error as e:  # storage closed during shutdown: omit, don't fail
                log.debug("outbox count unavailable: %s", e)
        storage = sentinel.db.health() if sentinel.db is not None else None
        return {
            "storage": storage,
            "events": sorted(events.items()),
            "drops": sorted(drops.items()),
            "ignored": sorted(ignored.items()),
            "collected": sorted((k, v) for k, v in collected.items() if v is not None),
            "states": states,
            "evaluation": book.last_duration,
            "rule_errors": book.rule_errors,
            # Every configured rule from the start, so rate() sees the first failure.
            "rule_errors_by_rule": sorted(
                {
                    **{rule.name: 0 for rule in sentinel.config.rules},
                    **dict(book.rule_errors_by_rule),
                }.items()
            ),
            "outcomes": sorted(outcomes.items()),
            "pending": pending,
            "tasks": tasks,
            "workers": workers,
            "queues": queues,
        }

    def _fill(self, family: Metric, snap: dict[str, Any]) -> None:
        name = family.name
        add = family.add_metric  # type: ignore[attr-defined]
        if name == "sentinel_events":
            for kind, n in snap["events"]:
                add([kind], n)
        elif name == "sentinel_events_dropped":
            for reason, n in snap["drops"]:
                add([reason], n)
        elif name == "sentinel_event_fields_ignored":
            for field, n in snap["ignored"]:
                add([field], n)
        elif name == "sentinel_last_collection_timestamp_seconds":
            for source, at in snap["collected"]:
                add([source], at)
        elif name == "sentinel_alerts":
            for state in (State.PENDING, State.FIRING):
                add([state.value], snap["states"].count(state))
        elif name == "sentinel_rule_evaluation_seconds":
            add([], snap["evaluation"])
        elif name == "sentinel_rule_errors":
            add([], snap["rule_errors"])
        elif name == "sentinel_rule_errors_by_rule":
            for rule, n in snap["rule_errors_by_rule"]:
                add([rule], n)
        elif name == "sentinel_storage_healthy":
            if snap["storage"] is not None:
                add([], 1 if snap["storage"].healthy else 0)
        elif name == "sentinel_storage_errors":
            if snap["storage"] is not None:
                add([], snap["storage"].errors)
        elif name == "sentinel_outbox_pending":
            if snap["pending"] is not None:
                add([], snap["pending"])
        elif name == "sentinel_notifications":
            for (channel, outcome), n in snap["outcomes"]:
                add([channel, outcome], n)
        elif name.startswith("celery_task_") and name[len("celery_task_") :] in COUNTERS:
            slot = COUNTERS.index(name[len("celery_task_") :])
            _stream(family, snap["tasks"], lambda row: add([row[0]], row[1][slot]))
        elif name in ("celery_task_runtime", "celery_task_queue_wait_time"):
            index = 2 if name == "celery_task_runtime" else 3
            histogram = cast(HistogramMetricFamily, family)
            _stream(
                family, snap["tasks"], lambda row: _add_histogram(histogram, row[0], row[index])
            )
        elif name == "celery_worker_up":
            for hostname, alive, _active in snap["workers"]:
                add([hostname], 1 if alive else 0)
        elif name == "celery_worker_tasks_active":
            for hostname, alive, active in snap["workers"]:
                # A dead worker's last heartbeat count is history, not work in progress.
                add([hostname], active if alive else 0)
        elif name == "celery_queue_length":
            for queue, depth in snap["queues"]:
                # A failed probe is a gap, not an empty queue: no sample rather than a 0.
                if depth is not None:
                    add([queue], depth)


def _stream(family: Metric, rows: list[Any], add: Callable[[Any], None]) -> None:
    """Make a per-task family's samples while the exposition reads them, a task at a time.

    With 10,000 task names a histogram family is ~190,000 samples; built up front, every
    family of a scrape would sit in memory together (hundreds of MiB). `add` appends one task's
    samples through the family's own add_metric, so the exposition format stays the library's.
    """

    def samples() -> Iterator[Any]:
        for row in rows:
            family.samples = []
            add(row)
            yield from family.samples

    family.samples = samples()  # type: ignore[assignment]


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
