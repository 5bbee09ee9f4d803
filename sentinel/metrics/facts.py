"""The fact store on /metrics: events ingested and dropped, and celery-exporter's families.

Celery metric names follow danihodovic/celery-exporter so its dashboards and alerts keep
working. The small families are copied under the store lock in one go; the per-task ones
(Sliced) a batch of tasks at a time while the response is written, so a scrape holds the
lock for short moments and never a copy of every task at once. /metrics writes those batches
as text (each family's `writer`, metrics/lines.py); prometheus_client's own exposition, and
the tests' reference, builds them as the library's objects (`add`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol, TypeVar

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
from sentinel.facts.tasks import HISTOGRAM_BOUNDS, QUEUE_WAIT_HIST, RUNTIME_HIST, TaskMetrics
from sentinel.facts.windows import COUNTERS, FAILED, SENT
from sentinel.metrics.lines import escape, number, pattern
from sentinel.metrics.sliced import Render, Rows, Sliced, Write

BATCH = 250  # label sets copied per hold of the store lock, and formatted per slice
TASK_LABELS = ["name", "hostname", "queue_name"]
Key = tuple[str, str, str]
V = TypeVar("V")
M = TypeVar("M", bound=Metric)
Row = tuple[Key, V]
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
        for name, documentation, label, counts in (
            ("sentinel_events", "Celery events ingested, by event type.", "type", snap.events),
            (
                "sentinel_events_dropped",
                "Celery events or series dropped: a cap reached, malformed, unknown task, a "
                "message refused (compressed, not JSON) or over the size limit.",
                "reason",
                snap.drops,
            ),
            (
                "sentinel_event_fields_ignored",
                "Numbers in accepted events that could not be true (inf, NaN, out of range), "
                "unused.",
                "field",
                snap.ignored,
            ),
        ):
            family = CounterMetricFamily(name, documentation, labels=[label])
            for value, n in counts:
                family.add_metric([value], n)
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
        for family in _PER_TASK:
            yield Sliced(family, self._batches(keys, family.copy))

    def _batches(self, keys: list[Key], copy: Callable[[TaskMetrics], V]) -> Iterator[list[Row[V]]]:
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


@dataclass(frozen=True, slots=True)
class _Small:
    """The small families' values, copied under the lock in one go."""

    events: list[tuple[str, int]] = field(default_factory=list)
    drops: list[tuple[str, int]] = field(default_factory=list)
    ignored: list[tuple[str, int]] = field(default_factory=list)
    collected: list[tuple[str, float]] = field(default_factory=list)
    workers: list[tuple[str, bool, int]] = field(default_factory=list)
    queues: list[tuple[str, int | None]] = field(default_factory=list)


# -- the per-task families, one class per shape ----------------------------------------------
# Each copies its value out of a TaskMetrics (under the lock), and turns a row, (label set,
# value), into samples two ways: prometheus_client's objects (add: the library's exposition,
# and the tests' reference) and text (writer: /metrics). celery-exporter's shape: a label set
# only ever sent (seen from a producer) shows task_sent alone; one a worker touched shows every
# counter, 0 included, so a failure ratio has both sides from the first task.


class _TaskFamily(Rows[M, Row[V]], Protocol[M, V]):
    def copy(self, m: TaskMetrics) -> V: ...


def _worker_side(m: TaskMetrics) -> bool:
    # Any count but task_sent (counts are never negative); asked per counter under the lock,
    # so a C sum rather than a loop over the slots.
    totals = m.totals
    return sum(totals) != totals[SENT]


def _escaped(key: Key) -> Sequence[str]:
    # One test for the three values: they almost never need escaping.
    joined = "".join(key)
    if "\\" in joined or "\n" in joined or '"' in joined:
        return [escape(v) for v in key]
    return key


class _Counter:
    """celery_task_<counter>: a label set's lifetime count (None: not shown)."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.counter = COUNTERS[slot]

    def empty(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            f"celery_task_{self.counter}", _COUNTER_HELP[self.counter], labels=TASK_LABELS
        )

    def copy(self, m: TaskMetrics) -> int | None:
        n = m.totals[self.slot]
        return n if n or _worker_side(m) else None

    def add(self, family: CounterMetricFamily, row: Row[int | None]) -> None:
        key, n = row
        if n is not None:
            family.add_metric(key, n)

    def writer(self, render: Render) -> Write[Row[int | None]]:
        family = self.empty()
        line = pattern(render, family, family.name + "_total", TASK_LABELS) + "{3}\n"

        def write(rows: Sequence[Row[int | None]]) -> str:
            return "".join(
                [line.format(*_escaped(key), number(n)) for key, n in rows if n is not None]
            )

        return write


class _Failed:
    """celery_task_failed: a label set's failures by exception class ("" before the first)."""

    def empty(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "celery_task_failed", _COUNTER_HELP["failed"], labels=[*TASK_LABELS, "exception"]
        )

    def copy(self, m: TaskMetrics) -> list[tuple[str, int]]:
        if m.exceptions:
            return sorted(m.exceptions.items())
        return [("", 0)] if _worker_side(m) else []

    def add(self, family: CounterMetricFamily, row: Row[list[tuple[str, int]]]) -> None:
        key, failures = row
        for exception, n in failures:
            family.add_metric([*key, exception], n)

    def writer(self, render: Render) -> Write[Row[list[tuple[str, int]]]]:
        family = self.empty()
        labels = [*TASK_LABELS, "exception"]
        line = pattern(render, family, family.name + "_total", labels) + "{4}\n"

        def write(rows: Sequence[Row[list[tuple[str, int]]]]) -> str:
            out = []
            for key, failures in rows:
                values = _escaped(key)
                for exception, n in failures:
                    out.append(line.format(*values, escape(exception), number(n)))
            return "".join(out)

        return write


class _Histogram:
    """A latency histogram: a label set's per-bound counts (the +Inf bucket last), then the
    sum; Prometheus wants the buckets cumulative."""

    def __init__(self, index: int, name: str, documentation: str) -> None:
        self.index, self.name, self.documentation = index, name, documentation

    def empty(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=TASK_LABELS)

    def copy(self, m: TaskMetrics) -> list[float]:
        return list(m.histograms[self.index])

    def add(self, family: HistogramMetricFamily, row: Row[list[float]]) -> None:
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

    def writer(self, render: Render) -> Write[Row[list[float]]]:
        family = self.empty()
        # The bucket line cut around its `le` (one format() per row for each side, then a
        # join of the buckets: a single format() with every bucket's fields costs 3x as much).
        bucket = pattern(render, family, self.name + "_bucket", [*TASK_LABELS, "le"])
        if bucket.count("{3}") != 1:
            raise ValueError(f"{self.name}: no le to cut at in {bucket!r}")
        before, after = bucket.split("{3}")
        count = pattern(render, family, self.name + "_count", TASK_LABELS) + "{3}\n"
        sum_ = pattern(render, family, self.name + "_sum", TASK_LABELS) + "{3}\n"
        les = [escape(le) for le in _LE]

        def write(rows: Sequence[Row[list[float]]]) -> str:
            out = []
            for key, hist in rows:
                cumulative = list(accumulate(hist[:-1]))
                total = cumulative[-1]
                if not total:  # as add()'s any(counts): counts are never negative
                    continue
                values = _escaped(key)
                head, tail = before.format(*values), after.format(*values)
                # Below 1e6 floatToGoString is repr (number()), so all of them: C throughout.
                texts = map(repr if total < 1e6 else number, cumulative)
                out.append(head)
                out.append(
                    head.join([f"{le}{tail}{t}\n" for le, t in zip(les, texts, strict=True)])
                )
                out.append(count.format(*values, number(total)))
                out.append(sum_.format(*values, number(hist[-1])))
            return "".join(out)

        return write


# In exposition order: the counters (failed in its place among them), then the histograms.
_PER_TASK: tuple[_TaskFamily[Any, Any], ...] = (
    *(_Failed() if slot == FAILED else _Counter(slot) for slot in range(len(COUNTERS))),
    _Histogram(RUNTIME_HIST, "celery_task_runtime", "Histogram of task runtime measurements."),
    _Histogram(
        QUEUE_WAIT_HIST,
        "celery_task_queue_wait_time",
        "Histogram of the time tasks spend waiting in the queue before being executed.",
    ),
)
