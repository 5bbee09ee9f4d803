"""The fact store: everything the rules know about the cluster, with a cap on every map.

Writers (the event receiver, the inspect and queue-depth probes) and readers (rules, metrics)
share one lock; every operation under it is short, so neither side waits long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from sentinel.facts import celery_events
from sentinel.facts.celery_events import KNOWN_TYPES, valid_id
from sentinel.facts.coverage import Coverage
from sentinel.facts.drops import Drops, IgnoredFields
from sentinel.facts.journal import Journal
from sentinel.facts.periodic import PeriodicSeen
from sentinel.facts.queue_flow import QueueFlows, consumed
from sentinel.facts.restarts import Restarts
from sentinel.facts.running import RunningTasks
from sentinel.facts.sketch import Sketch
from sentinel.facts.tasks import TaskMetrics, TaskSeries
from sentinel.facts.workers import WorkerState
from sentinel.ratelog import RateLimitedLog

log = logging.getLogger("sentinel.events")


@dataclass(slots=True)
class QueueDepth:
    name: str
    depth: int | None
    consumers: int | None
    at: float
    error: str | None = None


@dataclass(slots=True)
class Probe:
    """Health of one collector: when it last worked and why it last failed."""

    source: str
    ok_at: float | None = None
    error_at: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.ok_at is not None and (self.error_at is None or self.ok_at >= self.error_at)


# The longest a tick keeps the lock from a waiting writer, give or take one hold (handover()).
HANDOVER = 0.02

# The collectors that reach the broker: any of them failing means it cannot be reached.
BROKER_SOURCES = ("events", "inspect", "queues")


class FactStore:
    def __init__(
        self,
        *,
        bucket: float = 10.0,
        retention: float = 600.0,
        max_task_names: int = 10_000,
        max_workers: int = 2_000,
        max_queues: int = 2_000,
        max_inflight: int = 200_000,
        max_metric_label_sets: int = 20_000,
        worker_retention: float = 3600.0,
        max_window_bytes: int | None = None,
        max_running: int = 100_000,
        max_lost: int = 10_000,
    ) -> None:
        self.lock = threading.Lock()
        self.bucket = bucket
        self.retention = retention
        self.max_task_names = max_task_names
        self.max_workers = max_workers
        self.max_queues = max_queues
        self.max_inflight = max_inflight
        self.max_metric_label_sets = max_metric_label_sets
        self.worker_retention = worker_retention
        self.max_window_bytes = max_window_bytes
        self.window_bytes = 0  # as of the last prune()
        self.tasks: dict[str, TaskSeries] = {}
        # uuid -> [series, sent_ts, received_ts, started_ts] (tasks.SERIES...); insertion
        # order = age, so when full the oldest goes first (track()).
        self.inflight: dict[str, list[Any]] = {}
        self.workers: dict[str, WorkerState] = {}
        # /metrics' task families by (name, hostname, queue_name): their own map, so that past
        # its cap the rules (which read `tasks`) still see every event. `label_sets` counts
        # its entries plus every (entry, exception) pair, against max_metric_label_sets.
        self.task_metrics: dict[tuple[str, str, str], TaskMetrics] = {}
        self.label_sets = 0
        self.queues: dict[str, QueueDepth] = {}
        self.probes: dict[str, Probe] = {}
        # The facts of the Celery-native kinds, each map behind its own cap and drop count.
        drops = self.drops = Drops()
        self.running = RunningTasks(max_running=max_running, max_lost=max_lost, drops=drops)
        self.restarts = Restarts(max_workers=max_workers, drops=drops)
        self.flows = QueueFlows(max_queues=max_queues, drops=drops)
        self.periodic = PeriodicSeen(max_names=max_task_names, drops=drops)
        self.coverage = Coverage(max_workers=max_workers, drops=drops)
        self.fact_retention = retention  # how long lost tasks and restarts are kept
        self.events_by_type: dict[str, int] = dict.fromkeys(KNOWN_TYPES, 0)
        self.events_by_type["other"] = 0
        self.ignored = IgnoredFields()
        self._drop_log = RateLimitedLog(log, interval=10.0)
        # What each event means is celery_events'; the store only holds the lock around it.
        self._apply = partial(celery_events.apply, self)
        self.last_event_at: float | None = None
        # The broker as every probe together sees it, for BrokerUnreachable's value: when any
        # probe last reached it, when the current outage began (None: no probe failing), and
        # how long the last one lasted. Kept here so the value is monotonic across an outage
        # whichever probes flap during it.
        self.started_at: float | None = None  # set by the daemon: "since start" if never reached
        self.reached_at: float | None = None
        self.outage_since: float | None = None
        self.last_outage = 0.0
        # Window aggregates computed during one evaluation, shared by every rule that asks
        # for the same (series, window): None outside evaluating(). Lives for one tick only.
        self._tick_cache: dict[tuple[Any, ...], Any] | None = None
        # Glob patterns -> (names seen, matching series); extended as names arrive (series
        # are never removed: bump names_version if that changes). Bounded by GLOB_CACHE.
        self.glob_cache: dict[tuple[str, ...], tuple[int, int, list[tuple[str, TaskSeries]]]] = {}
        self.names_version = 0
        # What was written and which buckets opened, per series: a tick visits only the
        # series whose answers may have changed (journal.py).
        self.journal = Journal(bucket, retention)
        self._handed_at = 0.0  # handover()

    # -- the maps, each behind its cap (celery_events.Facts) -----------------------------

    def series(self, name: Any) -> TaskSeries | None:
        """The series of a task name, made on first sight unless malformed or past the cap."""
        series = self.tasks.get(name)
        if series is None:
            if not valid_id(name):
                self.drops.malformed += 1
                return None
            if len(self.tasks) >= self.max_task_names:
                self.drops.task_names += 1
                return None
            series = self.tasks[name] = TaskSeries(name, self.bucket, self.retention)
            series.ring.join(self.journal, series)
        return series

    def worker(self, hostname: Any, now: float, count: bool = True) -> WorkerState | None:
        """A worker, made on first sight unless malformed or past the cap (counted if count)."""
        worker = self.workers.get(hostname)
        if worker is None:
            if not valid_id(hostname):
                return None
            if len(self.workers) >= self.max_workers:
                if count:
                    self.drops.workers += 1
                return None
            worker = self.workers[hostname] = WorkerState(hostname, first_seen=now)
            worker.last_activity = now
        return worker

    def metrics(self, key: tuple[str, str, str], now: float) -> TaskMetrics | None:
        """The metrics of a (name, hostname, queue_name), made on first sight unless past the
        cap (then counted: the event still counts in the series the rules read)."""
        metrics = self.task_metrics.get(key)
        if metrics is None:
            if self.label_sets >= self.max_metric_label_sets:
                self.drops.label_sets += 1
                return None
            metrics = self.task_metrics[key] = TaskMetrics(now)
            self.label_sets += 1
        return metrics

    def may_add_exception(self, metrics: TaskMetrics, exception: str) -> bool:
        """Whether a task-failed with this exception class can have its own label set."""
        if metrics.exceptions is not None and exception in metrics.exceptions:
            return True
        if self.label_sets >= self.max_metric_label_sets:
            self.drops.label_sets += 1
            return False
        self.label_sets += 1
        return True

    def track(self, uuid: str, entry: list[Any]) -> None:
        """Start tracking a task in flight; when full, the oldest (most likely a task whose
        finishing event was lost) goes first."""
        inflight = self.inflight
        if len(inflight) >= self.max_inflight:
            del inflight[next(iter(inflight))]
            self.drops.inflight += 1
        inflight[uuid] = entry

    # -- events ---------------------------------------------------------------------------

    def apply_events(self, events: list[dict[str, Any]], now: float) -> None:
        """Apply a batch of decoded Celery events (celery_events.apply says what each means).
        Each event is accepted (and counted in events_by_type) or dropped under exactly one
        reason; nothing one event holds can stop the others."""
        with self.lock:
            apply = self._apply
            drops = self.drops
            for event in events:
                try:
                    apply(event, now)
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
                    drops.malformed += 1
                    self._drop_log.warning(now, "malformed", "event dropped as malformed: %r", e)
                except Exception:  # a bug must cost this event, never the stream
                    drops.error += 1
                    self._drop_log.exception(now, "error", "event dropped: applying it raised")
            if events:
                self.last_event_at = now

    def apply_event(self, event: dict[str, Any], now: float) -> None:
        self.apply_events([event], now)

    def set_retention(self, retention: float) -> None:
        with self.lock:
            self.retention = retention
            for series in self.tasks.values():
                series.ring.retention = retention
            self.journal.keep(retention)
            self.journal.invalidate()

    def stream_restored(self, lost_at: float, now: float) -> None:
        """The event stream is back after a gap in which no heartbeat could reach us (a broker
        restart stops the workers' heartbeats too). Workers alive when it was lost have until
        their own reconnect could take (kombu retries a lost broker every <= 30 s) plus
        2 x freq to show up, before their silence counts as death."""
        with self.lock:
            for worker in self.workers.values():
                worker.grant_reconnect_grace(lost_at, now)

    def count_malformed(self, n: int) -> None:
        with self.lock:
            self.drops.malformed += n

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Messages the collector refused before decoding (reason: refused, oversize)."""
        with self.lock:
            setattr(self.drops, reason, getattr(self.drops, reason) + n)

    # -- probes ---------------------------------------------------------------------------

    def probe_ok(self, source: str, now: float) -> None:
        with self.lock:
            self.probes.setdefault(source, Probe(source)).ok_at = now
            if source in BROKER_SOURCES:
                self.reached_at = max(self.reached_at or now, now)
            if self.outage_since is not None and not self._broker_failing():
                self.last_outage = max(0.0, now - self.outage_since)
                self.outage_since = None

    def probe_failed(self, source: str, error: str, now: float) -> None:
        with self.lock:
            probe = self.probes.setdefault(source, Probe(source))
            probe.error_at, probe.error = now, error
            if self.outage_since is None and source in BROKER_SOURCES:
                since = self.reached_at if self.reached_at is not None else self.started_at
                self.outage_since = min(since, now) if since is not None else now

    def inspect_ok(self) -> bool:
        """Whether the last inspect round worked (its answers are current)."""
        probe = self.probes.get("inspect")
        return probe is not None and probe.ok

    def _broker_failing(self) -> bool:
        return any((p := self.probes.get(s)) is not None and not p.ok for s in BROKER_SOURCES)

    def set_queue_depths(
        self, depths: dict[str, tuple[int, int | None]], errors: dict[str, str], now: float
    ) -> None:
        with self.lock:
            for name, (depth, consumers) in depths.items():
                q = self.queues.get(name)
                if q is None:
                    if len(self.queues) >= self.max_queues:
                        self.drops.queues += 1
                        continue
                    q = self.queues[name] = QueueDepth(name, depth, consumers, now)
                q.depth, q.consumers, q.at, q.error = depth, consumers, now, None
                # Served by a live worker listing it (queue_stalled's consumers): a stopped
                # process keeps its RabbitMQ consumer, but is a dead worker, not a stall.
                served = consumed(name, None, self.workers, self.inspect_ok(), now)
                self.flows.measured(name, depth, served, now)
            for name, error in errors.items():
                q = self.queues.get(name)
                if q is None:
                    # A queue never read yet still shows up, as "depth unknown", not as absent.
                    if len(self.queues) >= self.max_queues:
                        self.drops.queues += 1
                        continue
                    q = self.queues[name] = QueueDepth(name, None, None, now)
                q.depth, q.consumers, q.at, q.error = None, None, now, error

    def set_inspect(
        self,
        pings: set[str],
        pinged_at: float,
        ping_ttl: float,
        active_queues: dict[str, list[str]],
        stats: dict[str, dict[str, Any]],
        active: dict[str, int],
        now: float,
        running: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        """One inspect round's answers. running: each answering worker's `inspect active`
        tasks, which confirm or correct the running tasks (facts/running.py)."""
        with self.lock:
            for hostname in pings:
                worker = self.worker(hostname, now)
                if worker is not None:
                    worker.ping_at = pinged_at
                    worker.ping_ttl = ping_ttl
            for hostname, queues in active_queues.items():
                worker = self.workers.get(hostname)
                if worker is not None:
                    worker.queues = tuple(queues)
            for hostname, s in stats.items():
                worker = self.workers.get(hostname)
                if worker is not None:
                    worker.stats = s
            for hostname, n in active.items():
                worker = self.workers.get(hostname)
                if worker is not None and n > 0:
                    worker.last_activity = now
            for hostname, tasks in (running or {}).items():
                if hostname in self.workers:
                    self.running.confirm(hostname, tasks, pinged_at, now)

    # -- reading --------------------------------------------------------------------------

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Hold the lock for one evaluation of every rule, sharing window aggregates."""
        with self.lock, self.sharing():
            yield

    @contextmanager
    def sharing(self) -> Iterator[None]:
        """Share window aggregates between the rules of one tick, without holding the lock:
        the book takes it around each rule (AlertBook.tick), so ingest waits for one rule at
        most, never for a whole tick."""
        self._tick_cache = {}
        try:
            yield
        finally:
            self._tick_cache = None

    def handover(self) -> None:
        """Called between two holds of the lock by a reader that takes it many times in a row
        (a tick): at most every HANDOVER seconds, yield so that a writer waiting for the lock
        gets it. A released threading.Lock is not handed to a waiter, and the reader would
        take it again at once; yielding every time costs ~0.1 ms of wall time a yield on a
        loaded machine, so it is done only this often."""
        now = time.perf_counter()
        if now - self._handed_at >= HANDOVER:
            time.sleep(0)
            self._handed_at = time.perf_counter()

    @property
    def tick_cache(self) -> dict[tuple[Any, ...], Any] | None:
        """What the rules of this tick share (None outside sharing()): key it by a tuple that
        starts with the caller's own name."""
        return self._tick_cache

    def window_counts(self, series: TaskSeries, window: float, now: float) -> list[int]:
        """Counters over the window; the list may be shared: read it, never change it."""
        cache = self._tick_cache
        if cache is None:
            return series.ring.counts(window, now)
        key = (series, window, now)
        counts = cache.get(key)
        if counts is None:
            counts = cache[key] = series.ring.counts(window, now)
        return counts

    def window_quantile(
        self, series: TaskSeries, measure: int, window: float, now: float, q: float
    ) -> tuple[float | None, int]:
        """(value at quantile q, observations) over the window: what window_sketch(...)
        .quantile(q) and .count give, without merging the bucket sketches into one."""
        # The ring keeps the answer, and the window's merged bins to update it (windows.py).
        return series.ring.quantile(measure, window, now, q)

    def window_sketch(self, series: TaskSeries, measure: int, window: float, now: float) -> Sketch:
        """The merged latency sketch over the window; may be shared: never add to it."""
        cache = self._tick_cache
        if cache is None:
            return series.ring.sketch(measure, window, now)
        key = (series, measure, window, now)
        sketch = cache.get(key)
        if sketch is None:
            sketch = cache[key] = series.ring.sketch(measure, window, now)
        return sketch

    def known_queues(self, configured: tuple[str, ...]) -> list[str]:
        with self.lock:
            names = dict.fromkeys(configured)
            for worker in self.workers.values():
                names.update(dict.fromkeys(worker.queues))
            # A queue last seen holding messages stays measured until it is empty: after a
            # deploy renamed a queue, no worker lists the old one, and it is the one that
            # matters (queue_unconsumed).
            names.update((n, None) for n, q in self.queues.items() if q.depth)
            return list(names)

    def prune(self, now: float) -> None:
        """Forget workers gone for longer than worker_retention and buckets past retention."""
        with self.lock:
            gone = [
                h
                for h, w in self.workers.items()
                if not w.alive(now) and now - w.last_seen() > self.worker_retention
            ]
            for hostname in gone:
                del self.workers[hostname]
            # Also when no rule reads them: a dead worker's entries must not wait for the cap.
            self.running.sweep(
                lambda h: (w := self.workers.get(h)) is not None and w.alive(now), now
            )
            self.running.prune(now, self.fact_retention)
            self.restarts.prune(now, self.fact_retention)
            self.coverage.forget(set(self.workers))
            self.flows.forget(set(self.queues))
            # A (name, hostname, queue) nothing happened to for as long as a worker is kept
            # after it leaves: short-lived hosts (pods) must not grow /metrics forever.
            idle = [
                k for k, m in self.task_metrics.items() if now - m.seen_at > self.worker_retention
            ]
            for key in idle:
                metrics = self.task_metrics.pop(key)
                self.label_sets -= 1 + len(metrics.exceptions or ())
            for series in self.tasks.values():
                series.ring.trim(now)
            # Buckets this old left every window (and the rings) more than SLACK ago.
            self.journal.forget_before(now - self.journal.horizon)
            self._enforce_budget(now)

    def _enforce_budget(self, now: float) -> None:
        """Past max_window_bytes, forget the oldest time bucket of every series (buckets share
        their starts), then the next, until within budget: every window gets equally shorter
        and the buckets dropped are counted. The bucket being filled is never dropped."""
        rings = [s.ring for s in self.tasks.values()]
        journal = self.journal
        used = sum(r.nbytes() for r in rings) + journal.nbytes()
        budget = self.max_window_bytes
        if budget is not None:
            current = now - (now % self.bucket)
            while used > budget:
                oldest = min((r.starts[0] for r in rings if r.starts), default=current)
                if oldest >= current:
                    break
                for r in rings:
                    if r.starts and r.starts[0] <= oldest:
                        self.drops.buckets += r.drop_until(oldest)
                journal.invalidate()  # windows got shorter: every answer may have changed
                journal.forget_before(oldest + self.bucket)  # those buckets are gone
                used = sum(r.nbytes() for r in rings) + journal.nbytes()
        self.window_bytes = used
