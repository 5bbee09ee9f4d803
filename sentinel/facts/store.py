"""The fact store: everything the rules know about the cluster, with a cap on every map.

Writers (the event receiver, the inspect and queue-depth probes) and readers (rules, metrics)
share one lock; every operation under it is short, so neither side waits long.
"""

from __future__ import annotations

import logging
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sentinel.facts.sketch import Sketch
from sentinel.facts.windows import (
    COUNTERS,
    FAILED,
    QUEUE_WAIT,
    RECEIVED,
    REJECTED,
    RETRIED,
    REVOKED,
    RUNTIME,
    SENT,
    STARTED,
    SUCCEEDED,
    TOTAL,
    Ring,
)
from sentinel.ratelog import RateLimitedLog

log = logging.getLogger("sentinel.events")

DEFAULT_FREQ = 2.0
# Bounds on what an event may claim before it touches state (README "Hostile events"). A
# number outside them cannot be true of a Celery worker, so it is ignored, never stored: inf
# or 1e308 would overflow a sketch, and freq=inf would keep a ghost worker alive forever.
MAX_SKEW = 86_400.0  # a task event's timestamp more than a day from when it arrived
MAX_RUNTIME = 7 * 86_400.0  # a week: longer than any task, far from overflowing anything
MIN_FREQ, MAX_FREQ = 0.5, 300.0  # heartbeat interval: Celery's default is 2 s
MAX_COUNT = 1 << 32  # heartbeat active/processed
MAX_ID = 512  # characters in a uuid, task name or hostname: they become map keys
RECONNECT_GRACE = 30.0  # kombu's ensure_connection interval_max: a worker's longest retry wait

# Cumulative histogram bounds for the celery-exporter compatible latency metrics (seconds).
HISTOGRAM_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800)


class TaskSeries:
    """Facts about one task name: a windowed ring plus lifetime counters for /metrics."""

    __slots__ = ("histograms", "name", "ring", "totals")

    def __init__(self, name: str, width: float, retention: float) -> None:
        self.name = name
        self.ring = Ring(width, retention)
        self.totals = [0] * len(COUNTERS)
        # [runtime, queue_wait] -> per-bound counts (+Inf last), sum
        self.histograms = (array("d", _ZERO_HISTOGRAM), array("d", _ZERO_HISTOGRAM))

    def count(self, slot: int, now: float) -> None:
        self.ring.counters[self.ring.slot(now) + slot] += 1
        self.totals[slot] += 1

    def observe(self, measure: int, seconds: float, now: float) -> None:
        self.ring.slot(now)
        self.observe_newest(measure, seconds)

    def observe_newest(self, measure: int, seconds: float) -> None:
        """Observe into the ring's newest bucket (the one the last slot() call returned)."""
        if seconds < 0:  # clock skew between producer and worker: unknowable, not negative
            seconds = 0.0
        tail = self.ring.tail
        if tail is not None and (sketch := tail[measure]) is not None:
            sketch.add(seconds)
        else:
            self.ring.add(measure, seconds)
        if measure < TOTAL:
            hist = self.histograms[0 if measure == RUNTIME else 1]
            # The first bound >= seconds ("le"), or +Inf past the last one.
            hist[bisect_left(HISTOGRAM_BOUNDS, seconds)] += 1
            hist[-1] += seconds


_ZERO_HISTOGRAM = [0.0] * (len(HISTOGRAM_BOUNDS) + 2)


@dataclass(slots=True)
class WorkerState:
    hostname: str
    first_seen: float
    heartbeat_at: float | None = None
    freq: float = DEFAULT_FREQ
    regular: bool = False  # a periodic heartbeat (with active/processed) has been seen
    offline_at: float | None = None
    ping_at: float | None = None
    ping_ttl: float = 0.0
    grace_until: float = 0.0  # after an event-stream gap: time to send a heartbeat we can see
    active: int = 0
    processed: int = 0
    last_activity: float = 0.0
    last_task_started: float | None = None
    sw_ident: str = ""
    sw_ver: str = ""
    queues: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)

    def alive(self, now: float) -> bool:
        """Celery's rule: alive while now < last heartbeat + 2 x freq.

        A ping answer counts too, but only when it came after the heartbeats stopped (events
        broken, worker fine); an older ping must not keep a SIGKILLed worker alive.
        """
        expires = -1.0
        if self.heartbeat_at is not None:
            expires = self.heartbeat_at + 2.0 * self.freq
        if self.ping_at is not None and self.ping_at > expires:
            expires = self.ping_at + self.ping_ttl
        if self.grace_until > expires:
            expires = self.grace_until
        if self.offline_at is not None and self.offline_at >= max(
            self.heartbeat_at or 0.0, self.ping_at or 0.0
        ):
            return False
        return now < expires

    def last_seen(self) -> float:
        return max(self.heartbeat_at or 0.0, self.ping_at or 0.0, self.first_seen)


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


@dataclass(slots=True)
class Drops:
    task_names: int = 0
    workers: int = 0
    queues: int = 0
    inflight: int = 0
    malformed: int = 0
    unknown_task: int = 0
    buckets: int = 0  # time buckets forgotten early to stay within max_window_bytes
    refused: int = 0  # messages with a body Celery never sends: compressed, not JSON
    oversize: int = 0  # messages larger than the collector's body limit
    error: int = 0  # an event whose application raised something unexpected (a bug)

    def as_dict(self) -> dict[str, int]:
        return {
            "task_series_cap": self.task_names,
            "worker_cap": self.workers,
            "queue_cap": self.queues,
            "inflight_cap": self.inflight,
            "malformed": self.malformed,
            "unknown_task": self.unknown_task,
            "window_budget": self.buckets,
            "refused": self.refused,
            "oversize": self.oversize,
            "error": self.error,
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


# Event type -> its counter slot (task events) or a worker code; anything else is "other".
_WORKER, _ONLINE, _OFFLINE = 100, 101, 102
_KINDS = {
    "task-sent": SENT,
    "task-received": RECEIVED,
    "task-started": STARTED,
    "task-succeeded": SUCCEEDED,
    "task-failed": FAILED,
    "task-retried": RETRIED,
    "task-revoked": REVOKED,
    "task-rejected": REJECTED,
    "worker-heartbeat": _WORKER,
    "worker-online": _ONLINE,
    "worker-offline": _OFFLINE,
}
KNOWN_TYPES = (
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
    "task-rejected",
    "worker-online",
    "worker-heartbeat",
    "worker-offline",
)


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
        worker_retention: float = 3600.0,
        max_window_bytes: int | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.bucket = bucket
        self.retention = retention
        self.max_task_names = max_task_names
        self.max_workers = max_workers
        self.max_queues = max_queues
        self.max_inflight = max_inflight
        self.worker_retention = worker_retention
        self.max_window_bytes = max_window_bytes
        self.window_bytes = 0  # as of the last prune()
        self.tasks: dict[str, TaskSeries] = {}
        # uuid -> [series, sent_ts, received_ts, started_ts]; insertion order = age, so when full
        # the oldest (most likely a task whose finishing event was lost) goes first.
        self.inflight: dict[str, list[Any]] = {}
        self.workers: dict[str, WorkerState] = {}
        self.queues: dict[str, QueueDepth] = {}
        self.probes: dict[str, Probe] = {}
        self.events_by_type: dict[str, int] = dict.fromkeys(KNOWN_TYPES, 0)
        self.events_by_type["other"] = 0
        self.drops = Drops()
        self.ignored = IgnoredFields()
        self._drop_log = RateLimitedLog(log, interval=10.0)
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

    # -- series ---------------------------------------------------------------------------

    def _series(self, name: Any) -> TaskSeries | None:
        series = self.tasks.get(name)
        if series is None:
            if not isinstance(name, str) or not 0 < len(name) <= MAX_ID:
                self.drops.malformed += 1
                return None
            if len(self.tasks) >= self.max_task_names:
                self.drops.task_names += 1
                return None
            series = self.tasks[name] = TaskSeries(name, self.bucket, self.retention)
        return series

    def _worker(self, hostname: Any, now: float, count: bool = True) -> WorkerState | None:
        worker = self.workers.get(hostname)
        if worker is None:
            if not isinstance(hostname, str) or not 0 < len(hostname) <= MAX_ID:
                return None
            if len(self.workers) >= self.max_workers:
                if count:
                    self.drops.workers += 1
                return None
            worker = self.workers[hostname] = WorkerState(hostname, first_seen=now)
            worker.last_activity = now
        return worker

    def _track(self, uuid: str, entry: list[Any]) -> None:
        inflight = self.inflight
        if len(inflight) >= self.max_inflight:
            del inflight[next(iter(inflight))]
            self.drops.inflight += 1
        inflight[uuid] = entry

    # -- events ---------------------------------------------------------------------------

    def apply_events(self, events: list[dict[str, Any]], now: float) -> None:
        """Apply a batch of decoded Celery events. Each event is accepted (and counted in
        events_by_type) or dropped under exactly one reason; nothing one event holds can
        stop the others."""
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

    def _apply(self, event: dict[str, Any], now: float) -> None:
        # Every field is read, converted and range-checked before anything changes: a bad
        # event is skipped whole, a bad number ignored. One dict lookup picks the branch; this
        # runs for every event Celery sends. An event counts in events_by_type only once
        # applied; every other way out counts one drop reason.
        kind = event["type"]
        if not isinstance(kind, str):
            raise TypeError(f"event type {kind!r}")
        code = _KINDS.get(kind)
        by_type = self.events_by_type
        if code is None:
            by_type["other"] += 1
            return
        if code >= _WORKER:
            self._apply_worker(code, kind, event, now)
            return

        uuid = event["uuid"]
        if not isinstance(uuid, str) or not 0 < len(uuid) <= MAX_ID:
            raise TypeError(f"uuid {uuid!r}")
        ts: float | None = float(event["timestamp"])
        if not now - MAX_SKEW <= ts <= now + MAX_SKEW:  # NaN fails too
            ts = None  # unknowable: its latencies are not observed
            self.ignored.timestamp += 1
        runtime = event.get("runtime")
        if runtime is not None:
            runtime = float(runtime)
            if not 0.0 <= runtime <= MAX_RUNTIME:  # NaN, inf, negative, absurd
                runtime = None
                self.ignored.runtime += 1
        inflight = self.inflight

        if code in (RECEIVED, SENT):
            series = self._series(event["name"])
            if series is None:  # _series counted why
                return
            ring = series.ring
            ring.counters[ring.slot(now) + code] += 1
            series.totals[code] += 1
            if code == SENT:
                self._track(uuid, [series, ts, None, None])
            else:
                entry = inflight.get(uuid)
                if entry is None:
                    self._track(uuid, [series, None, ts, None])
                else:
                    entry[2] = ts
            by_type[kind] += 1
            return

        if code == STARTED:
            # A worker past the cap is counted by its heartbeats, not by each task it runs.
            worker = self._worker(event.get("hostname"), now, count=False)
            if worker is not None:
                worker.last_task_started = now
                worker.last_activity = now
            entry = inflight.get(uuid)
            if entry is None:
                self.drops.unknown_task += 1
                return
            series = entry[0]
            ring = series.ring
            ring.counters[ring.slot(now) + STARTED] += 1
            series.totals[STARTED] += 1
            entry[3] = ts
            queued = entry[1] if entry[1] is not None else entry[2]
            if queued is not None and ts is not None:
                series.observe_newest(QUEUE_WAIT, ts - queued)
            by_type[kind] += 1
            return

        if code in (SUCCEEDED, FAILED):
            entry = inflight.pop(uuid, None)
            if entry is None:
                self.drops.unknown_task += 1
                return
            series = entry[0]
            ring = series.ring
            ring.counters[ring.slot(now) + code] += 1
            series.totals[code] += 1
            started = entry[3]
            if runtime is not None:
                series.observe_newest(RUNTIME, runtime)
            elif started is not None and ts is not None:
                series.observe_newest(RUNTIME, ts - started)
            if ts is not None:
                queued = entry[1] if entry[1] is not None else entry[2]
                if queued is not None:
                    series.observe_newest(TOTAL, ts - queued)
                elif started is not None:
                    series.observe_newest(TOTAL, ts - started)
            by_type[kind] += 1
            return

        # retried, revoked, rejected: counted against the task's series if it is known
        entry = inflight.pop(uuid, None)
        if entry is not None:
            series = entry[0]
        else:
            name = event.get("name")
            if name is None:  # task-revoked carries no name: a task we never saw
                self.drops.unknown_task += 1
                return
            series = self._series(name)
            if series is None:  # _series counted why
                return
        series.count(code, now)
        by_type[kind] += 1

    def _apply_worker(self, code: int, kind: str, event: dict[str, Any], now: float) -> None:
        hostname = event["hostname"]
        if not isinstance(hostname, str) or not 0 < len(hostname) <= MAX_ID:
            raise TypeError(f"hostname {hostname!r}")
        freq = self._freq(float(event.get("freq") or DEFAULT_FREQ))
        active = int(event.get("active") or 0)
        if not 0 <= active <= MAX_COUNT:
            self.ignored.active += 1
            active = 0
        processed: int | None = int(event.get("processed") or 0)
        if processed is not None and not 0 <= processed <= MAX_COUNT:
            self.ignored.processed += 1
            processed = None
        worker = self._worker(hostname, now)
        if worker is None:  # _worker counted the cap
            return
        self.events_by_type[kind] += 1
        if code == _OFFLINE:
            worker.offline_at = now
            worker.active = 0
            return
        worker.heartbeat_at = now
        if "active" in event:
            worker.regular = True
            if freq is not None:
                worker.freq = freq
            if processed is None:
                processed = worker.processed
            if active > 0 or processed > worker.processed:
                worker.last_activity = now
            worker.active = active
            worker.processed = processed
        elif not worker.regular and freq is not None:
            # A heartbeat asked for by remote control says freq=5 whatever the worker's
            # real interval; trust it only until a periodic heartbeat tells the truth.
            worker.freq = freq
        if code == _ONLINE:
            worker.offline_at = None
            worker.sw_ident = str(event.get("sw_ident") or "")[:MAX_ID]
            worker.sw_ver = str(event.get("sw_ver") or "")[:MAX_ID]

    def _freq(self, freq: float) -> float | None:
        """A heartbeat's interval, or None (keep what is known) when it is out of range: not
        clamped, since an absurd freq clamped to the top would still keep a ghost alive."""
        if MIN_FREQ <= freq <= MAX_FREQ:  # NaN fails too
            return freq
        self.ignored.freq += 1
        return None

    def set_retention(self, retention: float) -> None:
        with self.lock:
            self.retention = retention
            for series in self.tasks.values():
                series.ring.retention = retention

    def stream_restored(self, lost_at: float, now: float) -> None:
        """The event stream is back after a gap in which no heartbeat could reach us (a broker
        restart stops the workers' heartbeats too). Workers alive when it was lost have until
        their own reconnect could take (kombu retries a lost broker every <= 30 s) plus
        2 x freq to show up, before their silence counts as death."""
        deadline = now + RECONNECT_GRACE
        with self.lock:
            for worker in self.workers.values():
                if worker.alive(lost_at):
                    worker.grace_until = max(worker.grace_until, deadline + 2.0 * worker.freq)

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
    ) -> None:
        with self.lock:
            for hostname in pings:
                worker = self._worker(hostname, now)
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

    # -- reading --------------------------------------------------------------------------

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Hold the lock for one evaluation of every rule, sharing window aggregates."""
        with self.lock:
            self._tick_cache = {}
            try:
                yield
            finally:
                self._tick_cache = None

    def window_counts(self, series: TaskSeries, window: float, now: float) -> list[int]:
        """Counters over the window; the list may be shared: read it, never change it."""
        cache = self._tick_cache
        if cache is None:
            return series.ring.counts(window, now)
        key = (series, window, now)
        counts = cache.get(key)
        if counts is None:
            counts = cache[key] = series.ring.counts(window, now)
        return counts  # type: ignore[no-any-return]

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
        return sketch  # type: ignore[no-any-return]

    def known_queues(self, configured: tuple[str, ...]) -> list[str]:
        with self.lock:
            names = dict.fromkeys(configured)
            for worker in self.workers.values():
                names.update(dict.fromkeys(worker.queues))
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
            for series in self.tasks.values():
                series.ring.trim(now)
            self._enforce_budget(now)

    def _enforce_budget(self, now: float) -> None:
        """Past max_window_bytes, forget the oldest time bucket of every series (buckets share
        their starts), then the next, until within budget: every window gets equally shorter
        and the buckets dropped are counted. The bucket being filled is never dropped."""
        rings = [s.ring for s in self.tasks.values()]
        used = sum(r.nbytes() for r in rings)
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
                used = sum(r.nbytes() for r in rings)
        self.window_bytes = used
