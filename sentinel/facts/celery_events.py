"""What each Celery event means for the facts: task-* events move a task through its series
and the in-flight map, worker-* events a worker's liveness and load.

Kept apart from the store (as Celery keeps `events/state.py`'s handlers apart from transport):
the store owns the maps, their caps and the lock; this module only says what an event changes.
Every function here runs under the store's lock, for every event Celery sends.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from sentinel.facts.coverage import Coverage
from sentinel.facts.drops import Drops, IgnoredFields
from sentinel.facts.periodic import PeriodicSeen
from sentinel.facts.queue_flow import QueueFlows
from sentinel.facts.restarts import Restarts
from sentinel.facts.running import RunningTasks
from sentinel.facts.tasks import (
    QUEUE,
    QUEUE_WAIT_HIST,
    RECEIVED_AT,
    RUNTIME_HIST,
    SENT_AT,
    SERIES,
    STARTED_AT,
    TaskMetrics,
    TaskSeries,
)
from sentinel.facts.windows import (
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
)
from sentinel.facts.workers import DEFAULT_FREQ, WorkerState

# Bounds on what an event may claim before it touches state (README "Hostile events"). A
# number outside them cannot be true of a Celery worker, so it is ignored, never stored: inf
# or 1e308 would overflow a sketch, and freq=inf would keep a ghost worker alive forever.
MAX_SKEW = 86_400.0  # a task event's timestamp more than a day from when it arrived
MAX_RUNTIME = 7 * 86_400.0  # a week: longer than any task, far from overflowing anything
MIN_FREQ, MAX_FREQ = 0.5, 300.0  # heartbeat interval: Celery's default is 2 s
MAX_COUNT = 1 << 32  # heartbeat active/processed
MAX_ID = 512  # characters in a uuid, task name or hostname: they become map keys

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


# An exception's repr as Celery sends it ("KeyError('x')"): its class name is the label.
_EXCEPTION_CLASS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(")
MAX_LABEL = 128  # characters of a hostname, queue or exception label value


def valid_id(value: object) -> bool:
    """A uuid, task name or hostname that may become a map key."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID


def host_label(hostname: Any) -> str:
    """celery-exporter's `hostname` label: the host part of a node name ("w1@web-3" ->
    "web-3", Celery's nodesplit), so a producer's per-process name ("gen531@web-3") is one
    label value, not one per process."""
    if not isinstance(hostname, str):
        return ""
    return hostname.partition("@")[2][:MAX_LABEL] if "@" in hostname else hostname[:MAX_LABEL]


def exception_label(exception: Any) -> str:
    """celery-exporter's `exception` label: the class name alone, never the message (which
    would make a label value per failure)."""
    if isinstance(exception, str) and (m := _EXCEPTION_CLASS.match(exception)):
        return m.group(1)[:MAX_LABEL]
    return "UnknownException"


class Facts(Protocol):
    """What an event may change: the store's maps, reached through its capped constructors."""

    inflight: dict[str, list[Any]]
    workers: dict[str, WorkerState]
    events_by_type: dict[str, int]
    drops: Drops
    ignored: IgnoredFields
    running: RunningTasks
    restarts: Restarts
    flows: QueueFlows
    periodic: PeriodicSeen
    coverage: Coverage

    def series(self, name: Any) -> TaskSeries | None: ...
    def worker(self, hostname: Any, now: float, count: bool = True) -> WorkerState | None: ...
    def track(self, uuid: str, entry: list[Any]) -> None: ...
    def metrics(self, key: tuple[str, str, str], now: float) -> TaskMetrics | None: ...
    def may_add_exception(self, metrics: TaskMetrics, exception: str) -> bool: ...


def _queue(facts: Facts, entry: list[Any] | None, hostname: Any) -> str:
    """The queue a task came from: what task-sent said, else the one queue its worker consumes
    (a worker takes tasks only from its queues), else "" (unknown: Celery sends no task-sent
    event unless task_send_sent_event is set)."""
    if entry is not None and (known := entry[QUEUE]):
        return str(known)
    worker = facts.workers.get(hostname) if isinstance(hostname, str) else None
    queue = worker.queues[0][:MAX_LABEL] if worker is not None and len(worker.queues) == 1 else ""
    if entry is not None:
        entry[QUEUE] = queue
    return queue


def apply(facts: Facts, event: dict[str, Any], now: float) -> None:
    """Apply one decoded Celery event. It is counted in events_by_type only once applied; every
    other way out counts one drop reason, or raises (the store counts it malformed)."""
    # Every field is read, converted and range-checked before anything changes: a bad event is
    # skipped whole, a bad number ignored. One dict lookup picks the branch.
    kind = event["type"]
    if not isinstance(kind, str):
        raise TypeError(f"event type {kind!r}")
    code = _KINDS.get(kind)
    by_type = facts.events_by_type
    if code is None:
        by_type["other"] += 1
        return
    if code >= _WORKER:
        _worker_event(facts, code, kind, event, now)
        return

    uuid = event["uuid"]
    if not valid_id(uuid):
        raise TypeError(f"uuid {uuid!r}")
    stamp = float(event["timestamp"])
    ts: float | None = stamp
    if not now - MAX_SKEW <= stamp <= now + MAX_SKEW:  # NaN fails too
        ts = None  # unknowable: its latencies are not observed
        facts.ignored.timestamp += 1
    runtime = event.get("runtime")
    if runtime is not None:
        runtime = float(runtime)
        if not 0.0 <= runtime <= MAX_RUNTIME:  # NaN, inf, negative, absurd
            runtime = None
            facts.ignored.runtime += 1
    inflight = facts.inflight

    hostname = event.get("hostname")
    if code in (RECEIVED, SENT):
        series = facts.series(event["name"])
        if series is None:  # series() counted why
            return
        ring = series.ring
        ring.counters[ring.slot(now) + code] += 1
        series.totals[code] += 1
        facts.periodic.saw(series.name, code == SENT, now)
        if code == SENT:
            queue = event.get("queue")
            queue = queue[:MAX_LABEL] if isinstance(queue, str) else ""
            facts.track(uuid, [series, ts, None, None, queue])
        else:
            # The queues of the worker that took it moved (task events do not name the queue).
            taker = facts.workers.get(event.get("hostname"))  # type: ignore[arg-type]
            if taker is not None and taker.queues:
                facts.flows.taken(taker.queues, now)
            entry = inflight.get(uuid)
            if entry is None:
                entry = [series, None, ts, None, ""]
                facts.track(uuid, entry)
            else:
                entry[RECEIVED_AT] = ts
            queue = _queue(facts, entry, hostname)
        if (metrics := facts.metrics((series.name, host_label(hostname), queue), now)) is not None:
            metrics.count(code, now)
        by_type[kind] += 1
        return

    if code == STARTED:
        # A worker past the cap is counted by its heartbeats, not by each task it runs.
        worker = facts.worker(hostname, now, count=False)
        if worker is not None:
            worker.last_task_started = now
            worker.last_activity = now
            facts.coverage.started(worker.hostname)
        entry = inflight.get(uuid)
        if entry is None:
            facts.drops.unknown_task += 1
            return
        series = entry[SERIES]
        if worker is not None:
            facts.running.started(uuid, series.name, worker.hostname, now)
        ring = series.ring
        ring.counters[ring.slot(now) + STARTED] += 1
        series.totals[STARTED] += 1
        entry[STARTED_AT] = ts
        key = (series.name, host_label(hostname), _queue(facts, entry, hostname))
        metrics = facts.metrics(key, now)
        if metrics is not None:
            metrics.count(STARTED, now)
        queued = entry[SENT_AT] if entry[SENT_AT] is not None else entry[RECEIVED_AT]
        if queued is not None and ts is not None:
            series.observe_newest(QUEUE_WAIT, ts - queued)
            if metrics is not None:
                metrics.observe(QUEUE_WAIT_HIST, ts - queued)
        by_type[kind] += 1
        return

    if code in (SUCCEEDED, FAILED):
        facts.running.finished(uuid)
        entry = inflight.pop(uuid, None)
        if entry is None:
            facts.drops.unknown_task += 1
            return
        series = entry[SERIES]
        ring = series.ring
        ring.counters[ring.slot(now) + code] += 1
        series.totals[code] += 1
        started = entry[STARTED_AT]
        key = (series.name, host_label(hostname), _queue(facts, entry, hostname))
        metrics = facts.metrics(key, now)
        if metrics is not None:
            if code == FAILED:
                exception = exception_label(event.get("exception"))
                if facts.may_add_exception(metrics, exception):
                    metrics.fail(exception, now)
            else:
                metrics.count(code, now)
        if runtime is None and started is not None and ts is not None:
            runtime = ts - started
        if runtime is not None:
            series.observe_newest(RUNTIME, runtime)
            if metrics is not None:
                metrics.observe(RUNTIME_HIST, runtime)
        if ts is not None:
            queued = entry[SENT_AT] if entry[SENT_AT] is not None else entry[RECEIVED_AT]
            if queued is not None:
                series.observe_newest(TOTAL, ts - queued)
            elif started is not None:
                series.observe_newest(TOTAL, ts - started)
        by_type[kind] += 1
        return

    # retried, revoked, rejected: counted against the task's series if it is known
    facts.running.finished(uuid)
    entry = inflight.pop(uuid, None)
    if entry is not None:
        series = entry[SERIES]
    else:
        name = event.get("name")
        if name is None:  # task-revoked carries no name: a task we never saw
            facts.drops.unknown_task += 1
            return
        series = facts.series(name)
        if series is None:  # series() counted why
            return
    series.count(code, now)
    key = (series.name, host_label(hostname), _queue(facts, entry, hostname))
    if (metrics := facts.metrics(key, now)) is not None:
        metrics.count(code, now)
    by_type[kind] += 1


def _worker_event(facts: Facts, code: int, kind: str, event: dict[str, Any], now: float) -> None:
    hostname = event["hostname"]
    if not valid_id(hostname):
        raise TypeError(f"hostname {hostname!r}")
    freq = _freq(facts.ignored, float(event.get("freq") or DEFAULT_FREQ))
    active = int(event.get("active") or 0)
    if not 0 <= active <= MAX_COUNT:
        facts.ignored.active += 1
        active = 0
    processed: int | None = int(event.get("processed") or 0)
    if processed is not None and not 0 <= processed <= MAX_COUNT:
        facts.ignored.processed += 1
        processed = None
    known = facts.workers.get(hostname)
    beat_before = known is not None and known.heartbeat_at is not None
    worker = facts.worker(hostname, now)
    if worker is None:  # worker() counted the cap
        return
    facts.events_by_type[kind] += 1
    if code == _OFFLINE:
        worker.offline_at = now
        worker.active = 0
        facts.running.worker_offline(hostname, now)
        return
    if code == _ONLINE:
        # Sent only when a worker starts: whatever this name ran before died with the old
        # process (a SIGKILL and a restart faster than its heartbeats expire), and if it was
        # known, it came back.
        facts.running.worker_offline(hostname, now)
        if beat_before or worker.offline_at is not None:
            facts.restarts.came_back(hostname, now)
    elif beat_before and not worker.alive(now):
        facts.restarts.came_back(hostname, now)  # heartbeats again after they expired
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
        facts.coverage.heartbeat(hostname, processed, now)
    elif not worker.regular and freq is not None:
        # A heartbeat asked for by remote control says freq=5 whatever the worker's
        # real interval; trust it only until a periodic heartbeat tells the truth.
        worker.freq = freq
    if code == _ONLINE:
        worker.offline_at = None
        worker.sw_ident = str(event.get("sw_ident") or "")[:MAX_ID]
        worker.sw_ver = str(event.get("sw_ver") or "")[:MAX_ID]


def _freq(ignored: IgnoredFields, freq: float) -> float | None:
    """A heartbeat's interval, or None (keep what is known) when it is out of range: not
    clamped, since an absurd freq clamped to the top would still keep a ghost alive."""
    if MIN_FREQ <= freq <= MAX_FREQ:  # NaN fails too
        return freq
    ignored.freq += 1
    return None
