"""The fact store on /metrics: events ingested and dropped, and celery-exporter's families.

Celery metric names follow danihodovic/celery-exporter so its dashboards and alerts keep
working. The small families are copied under the store lock in one go; the per-task ones
(Sliced) a batch of tasks at a time while the response is written, so a scrape holds the
lock for short moments and never a copy of every task at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sentinel.clock import Clock
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import HISTOGRAM_BOUNDS, TaskMetrics
from sentinel.facts.windows import COUNTERS, FAILED, SENT
from sentinel.metrics.sliced import Sliced

BATCH = 250  # label sets copied per hold of the store lock, and formatted per slice
TASK_LABELS = ["name", "hostname", "queue_name"]
Key = tuple[str, str, str]
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
_HISTOGRAMS = (
    ("celery_task_runtime", "Histogram of task runtime measurements."),
    (
        "celery_task_queue_wait_time",
        "Histogram of the time tasks spend waiting in the queue before being executed.",
    ),
)


class FactsCollector(Collector):
    def __init__(self, store: FactStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        # Empty families let the registry refuse a duplicate name at register() time
        # without running a full scrape.
        yield from self._small(_Small())
        yield from self._tasks([])

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        store = self.store
        with store.lock:
            small = _Small(
                events=sorted(store.events_by_type.items()),
                drops=sorted(store.drops.as_dict().items()),
                ignored=sorted(store.ignored.as_dict().items()),
                collected=sorted(
                    (s, at)
                    for s, at in (
                        *((s, p.ok_at) for s, p in store.probes.items() if s != "events"),
                        ("events", store.last_event_at),
                    )
                    if at is not None
                ),
                workers=sorted((h, w.alive(now), w.active) for h, w in store.workers.items()),
                queues=sorted((q.name, q.depth) for q in store.queues.values()),
            )
            keys = sorted(store.task_metrics)
        yield from self._small(small)
        yield from self._tasks(keys)

    # -- the small families ----------------------------------------------------------------

    def _small(self, snap: _Small) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "sentinel_events", "Celery events ingested, by event type.", labels=["type"]
        )
        for kind, n in snap.events:
            family.add_metric([kind], n)
        yield family
        family = CounterMetricFamily(
            "sentinel_events_dropped",
            "Celery events or series dropped: a cap reached, malformed, unknown task, a message "
            "refused (compressed, not JSON) or over the size limit.",
            labels=["reason"],
        )
        for reason, n in snap.drops:
            family.add_metric([reason], n)
        yield family
        family = CounterMetricFamily(
            "sentinel_event_fields_ignored",
            "Numbers in accepted events that could not be true (inf, NaN, out of range), unused.",
            labels=["field"],
        )
        for name, n in snap.ignored:
            family.add_metric([name], n)
        yield family
        gauge = GaugeMetricFamily(
            "sentinel_last_collection_timestamp_seconds",
            "When each collector last succeeded (events: when the last event arrived).",
            labels=["source"],
        )
        for source, at in snap.collected:
            gauge.add_metric([source], at)
        yield gauge
        up = GaugeMetricFamily(
            "celery_worker_up",
            "Indicates if a worker has recently sent a heartbeat.",
            labels=["hostname"],
        )
        active = GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing.",
            labels=["hostname"],
        )
        for hostname, alive, n in snap.workers:
            # A dead worker stays, at 0, until the store prunes it (limits.worker_retention):
            # celery-mixin's CeleryWorkerDown fires on `celery_worker_up == 0`.
            up.add_metric([hostname], 1 if alive else 0)
            # A dead worker's last heartbeat count is history, not work in progress.
            active.add_metric([hostname], n if alive else 0)
        yield up
        yield active
        queues = GaugeMetricFamily(
            "celery_queue_length",
            "The number of messages in the broker queue.",
            labels=["queue_name"],
        )
        for queue, depth in snap.queues:
            # A failed probe is a gap, not an empty queue: no sample rather than a 0.
            if depth is not None:
                queues.add_metric([queue], depth)
        yield queues

    # -- the per-task families -------------------------------------------------------------

    def _tasks(self, keys: list[Key]) -> Iterator[Metric]:
        # celery-exporter's shape: a label set only ever sent (seen from a producer) shows
        # task_sent alone; one a worker touched shows every counter, 0 included, so a
        # failure ratio has both sides from the first task.
        for slot, counter in enumerate(COUNTERS):
            if slot == FAILED:
                yield Sliced(_failed, self._batches(keys, _failures), _add_failures)
                continue
            yield Sliced(
                _counter(counter),
                self._batches(keys, partial(_count, slot=slot)),
                _add_count,
            )
        for index, (name, documentation) in enumerate(_HISTOGRAMS):
            yield Sliced(
                _histogram(name, documentation),
                self._batches(keys, partial(_histogram_copy, index=index)),
                _add_histogram,
            )

    def _batches(self, keys: list[Key], copy: Callable[[TaskMetrics], Any]) -> Iterator[list[Any]]:
        store = self.store
        for start in range(0, len(keys), BATCH):
            with store.lock:  # copied under the lock, formatted outside it
                live = store.task_metrics
                rows = [
                    (key, copy(m))
                    for key in keys[start : start + BATCH]
                    if (m := live.get(key)) is not None  # pruned since the scrape began
                ]
            yield rows


def _worker_side(m: TaskMetrics) -> bool:
    return any(n for slot, n in enumerate(m.totals) if slot != SENT)


def _count(m: TaskMetrics, slot: int) -> int | None:
    n = m.totals[slot]
    return n if n or _worker_side(m) else None


def _histogram_copy(m: TaskMetrics, index: int) -> list[float]:
    return list(m.histograms[index])


def _add_count(family: CounterMetricFamily, row: tuple[Key, int | None]) -> None:
    key, n = row
    if n is not None:
        family.add_metric(key, n)


def _failures(m: TaskMetrics) -> list[tuple[str, int]]:
    if m.exceptions:
        return sorted(m.exceptions.items())
    return [("", 0)] if _worker_side(m) else []


def _failed() -> CounterMetricFamily:
    return CounterMetricFamily(
        "celery_task_failed", _COUNTER_HELP["failed"], labels=[*TASK_LABELS, "exception"]
    )


def _add_failures(family: CounterMetricFamily, row: tuple[Key, list[tuple[str, int]]]) -> None:
    key, failures = row
    for exception, n in failures:
        family.add_metric([*key, exception], n)


@dataclass(frozen=True, slots=True)
class _Small:
    """The small families' values, copied under the lock in one go."""

    events: list[tuple[str, int]] = field(default_factory=list)
    drops: list[tuple[str, int]] = field(default_factory=list)
    ignored: list[tuple[str, int]] = field(default_factory=list)
    collected: list[tuple[str, float]] = field(default_factory=list)
    workers: list[tuple[str, bool, int]] = field(default_factory=list)
    queues: list[tuple[str, int | None]] = field(default_factory=list)


def _counter(counter: str) -> Callable[[], CounterMetricFamily]:
    return lambda: CounterMetricFamily(
        f"celery_task_{counter}", _COUNTER_HELP[counter], labels=TASK_LABELS
    )


def _histogram(name: str, documentation: str) -> Callable[[], HistogramMetricFamily]:
    return lambda: HistogramMetricFamily(name, documentation, labels=TASK_LABELS)


def _add_histogram(family: HistogramMetricFamily, row: tuple[Key, list[float]]) -> None:
    """hist: per-bound counts (the +Inf bucket last), then the sum; Prometheus wants cumulative."""
    key, hist = row
    counts, total = hist[:-1], hist[-1]
    if not any(counts):
        return  # a task only ever sent (by a producer) has no latency to show
    buckets: list[tuple[str, float]] = []
    running = 0.0
    for le, n in zip(_LE, counts, strict=True):
        running += n
        buckets.append((le, running))
    family.add_metric(key, buckets, total)
