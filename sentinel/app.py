"""Wiring: build every component from a Config, start them in data-flow order, stop in reverse."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from celery import Celery
from kombu.utils.url import maybe_sanitize_url
from prometheus_client import CollectorRegistry

from sentinel.alerts.book import AlertBook, Row, Transition
from sentinel.alerts.repo import AlertRepo, SqlAlertRepo
from sentinel.alerts.values import ValueHistory
from sentinel.api.page.ports import PagePorts
from sentinel.api.ports import ApiPorts, HealthFacts, StatusFacts
from sentinel.api.server import ApiServer
from sentinel.clock import Clock, SystemClock
from sentinel.collectors.beat_schedule import resolve as beat_periods
from sentinel.collectors.events import EventCollector
from sentinel.collectors.filesystem_transport import transport_for
from sentinel.collectors.inspect import InspectCollector
from sentinel.collectors.queues import QueueCollector, probe_for
from sentinel.config import Config
from sentinel.config.loader import ConfigError
from sentinel.config.schema import ServerConfig
from sentinel.db import open_engine
from sentinel.facts.periodic_repo import PeriodicRepo, SqlPeriodicRepo
from sentinel.facts.store import FactStore
from sentinel.gc_pause import gc_paused
from sentinel.ha.alerts import LeaderAlertRepo
from sentinel.ha.alone import leave_ha
from sentinel.ha.metrics import HaCollector
from sentinel.metrics.alerts import AlertsCollector
from sentinel.metrics.delivery import DeliveryCollector
from sentinel.metrics.facts import FactsCollector
from sentinel.metrics.storage import StorageCollector
from sentinel.model import Alert, Labels, State
from sentinel.notify import maintenance
from sentinel.notify.history import SqlNotificationHistory
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.pipeline import Dispatcher, Mute
from sentinel.notify.route import RouteNode, receiver_names
from sentinel.notify.route import build_from as build_route
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silencer
from sentinel.notify.silence.repo import SqlSilenceRepo
from sentinel.page_adapters import page_ports
from sentinel.ratelog import RateLimitedLog
from sentinel.record.metrics import RecordingCollector
from sentinel.record.recorder import Recorder, rolling, tapped
from sentinel.rules import liveness
from sentinel.rules.base import RuleBase
from sentinel.rules.storage_failing import StorageFailingRule

if TYPE_CHECKING:
    from sentinel.ha.lease import Lease

log = logging.getLogger("sentinel")

# How often the database file is checked (deleted, replaced) and, while storage fails, how
# often writing the state back is tried.
STORAGE_CHECK_INTERVAL = 5.0
# How often the periodic tasks' checked_at is written when nothing else about them changed.
PERIODIC_CHECKPOINT = 60.0


def celery_app(config: Config) -> Celery:
    app = Celery("sentinel", broker=config.celery.broker_url, set_as_current=False)
    app.conf.update(
        broker_transport=transport_for(config.celery.broker_url),
        broker_transport_options=dict(config.celery.broker_transport_options),
        broker_connection_timeout=config.celery.inspect_timeout,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=1,
        result_backend=None,
        event_queue_prefix="sentinel",
        worker_hijack_root_logger=False,
    )
    return app


def build_store(config: Config) -> FactStore:
    limits = config.limits
    store = FactStore(
        bucket=limits.bucket,
        retention=config.max_window,
        max_task_names=limits.max_task_names,
        max_workers=limits.max_workers,
        max_queues=limits.max_queues,
        max_inflight=limits.max_inflight_tasks,
        max_metric_label_sets=limits.max_metric_label_sets,
        worker_retention=limits.worker_retention,
        max_window_bytes=limits.max_window_mib << 20,
        max_running=limits.max_running_tasks,
        max_lost=limits.max_lost_tasks,
    )
    store.fact_retention = config.max_fact_window
    return store


class Sentinel:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        persist: bool = True,
        recorder: Recorder | None = None,
    ):
        self.config = config
        self.clock = clock or SystemClock()
        self.app = celery_app(config)
        self.store = build_store(config)
        self.store.started_at = self.clock.now()
        self.db = open_engine(config.storage, self.clock.now) if persist else None
        # HA (sentinel/ha): every replica evaluates; the lease holder alone writes and sends.
        self.lease: Lease | None = None
        alert_repo: AlertRepo | None = SqlAlertRepo(self.db) if self.db is not None else None
        if self.db is not None and config.storage.url and not config.ha.enabled:
            # A pair's lease would fence every write of a lone sentinel. Only with storage.url:
            # the check imports psycopg (~10 MiB), and SQLite never holds a lease.
            leave_ha(self.db)
        if self.db is not None and config.ha.enabled:
            from sentinel.ha.lease import lease_for  # psycopg: only with storage.url

            self.lease = lease_for(self.db, config.ha.replica, config.ha.lease)
            alert_repo = LeaderAlertRepo(
                SqlAlertRepo(self.db), self.lease.epoch, lambda: self.book.alerts
            )
        self.book = AlertBook(alert_repo)
        # periodic_task: the beat schedule's periods (ConfigError when the app cannot be
        # imported), and what the previous run saw of each periodic task.
        self.store.periodic.schedule = beat_periods(config)
        self.periodic_repo: PeriodicRepo | None = None
        if self.db is not None:
            self.periodic_repo = SqlPeriodicRepo(self.db)
            self.store.periodic.remembered = self.periodic_repo.load()
        # The status page's charts: every evaluation's values (per alert label set) and queue
        # depths, bounded by `limits`; kept across reloads (they live as long as the process).
        limits = config.limits
        self.values = ValueHistory(limits.history_points, limits.max_history_series)
        self.depths = ValueHistory(limits.history_points, limits.max_queues)
        self.notifications = SqlNotificationHistory(self.db) if self.db is not None else None
        # What the collectors write to the store, also to a recording (`record:`; sentinel.record).
        # Only the daemon keeps the configured one: `eval` (persist=False) records nothing.
        if recorder is None and config.record is not None and persist:
            recorder = rolling(config.record, config, self.clock)
        self.recorder = recorder
        sink = self.store if recorder is None else tapped(self.store, recorder)
        self.events = EventCollector(self.app, sink, self.clock)
        self.inspector = InspectCollector(
            self.app,
            sink,
            self.clock,
            interval=config.celery.inspect_interval,
            timeout=config.celery.inspect_timeout,
            enable_events=config.celery.enable_events,
        )
        probe = probe_for(config.celery.broker_url, dict(config.celery.broker_transport_options))
        self.queues = (
            QueueCollector(probe, sink, self.clock, config.celery.queues) if probe else None
        )
        self.silencer = Silencer(SqlSilenceRepo(self.db) if self.db is not None else None)
        self.inhibitor = Inhibitor(config.inhibit)
        self.route = build_route(config)
        self.book.resolved_retention = resolved_retention(self.route)
        self.dispatcher: Dispatcher | None = None
        self.sender: Sender | None = None
        if self.db is not None:
            leading = self.lease.leading if self.lease is not None else lambda: True
            self.sender = Sender(
                self.db,
                config.channels,
                self.clock,
                history=self.notifications,
                external_url=self._external_url,
                may_send=leading,
            )
            self.dispatcher = Dispatcher(
                self.route,
                config.channels,
                self.db,
                self.silencer,
                self.inhibitor,
                on_queued=self.sender.wake,
                may_decide=leading,
            )
        self.maintenance: maintenance.Maintenance | None = None
        if self.db is not None:
            self.maintenance = maintenance.Maintenance(
                NotificationLog(self.db),
                self.silencer,
                retention=lambda: maintenance.nflog_retention(self.route),
                live_groups=self._live_groups,
                history=self.notifications,
                history_bounds=self._history_bounds,
            )
        self.scheduler: BackgroundScheduler | None = None
        self.api: Any = None
        self._eval_lock = threading.Lock()
        self._alive_at_eval: frozenset[str] = frozenset()
        self._evaluated_at: float | None = None
        self._builtin: StorageFailingRule | None = None
        self._periodic_seen: list[tuple[str, float, bool, bool]] = []
        self._periodic_saved_at = float("-inf")
        self.on_transitions: list[Any] = []
        self._ha_log = RateLimitedLog(log, interval=60.0)

    # -- one-shot operations (also what the scheduler runs) --------------------------------

    def collect_once(self) -> None:
        self.inspector.collect()
        if self.queues is not None:
            self.queues.collect()

    def evaluate(self) -> tuple[list[Transition], Sequence[Row]]:
        self.refresh_shared()
        with self._eval_lock:
            if self.queues is not None:
                self.queues.collect()
            now = self.clock.now()
            with gc_paused():  # sentinel/gc_pause.py: the tick's garbage is acyclic
                transitions, rows = self.book.tick(self.rules(), self.store, now)
            self._evaluated_at = now
            self.values.record_parts(now, rows.parts())  # per-series rules: what changed
            self.depths.record(now, self._depths())
            self._save_periodic(now)
            self.store.prune(now)
            self._alive_at_eval = self._alive(now)
            if self.dispatcher is not None:
                self.dispatcher.tick(self.book.alerts.values(), now)
        log.debug(
            "evaluation: %d rule(s) in %.3fs, %d transition(s)",
            len(self.config.rules),
            self.book.last_duration,
            len(transitions),
        )
        for t in transitions:
            log_transition(t)
        for callback in self.on_transitions:
            callback(transitions)
        return transitions, rows

    def _save_periodic(self, now: float, force: bool = False) -> None:
        """Write the periodic tasks' last-seen times when one changed or one became overdue, and
        their checked_at (how long this run watched) at least every PERIODIC_CHECKPOINT: a
        write per evaluation would be an fsync per tick for what the restart rule needs only
        at those moments. `force`: at stop."""
        if self.periodic_repo is None or not self.store.periodic.watched:
            return
        with self.store.lock:
            rows = self.store.periodic.rows(now)
            changes = self.store.periodic.changes(now)
        if (
            not force
            and changes == self._periodic_seen
            and now - self._periodic_saved_at < PERIODIC_CHECKPOINT
        ):
            return
        try:
            self.periodic_repo.save(rows)
        except self.db.failures as e:  # type: ignore[union-attr]
            # PostgreSQL away: kept in memory, written at the next evaluation.
            self._ha_log.warning(now, "periodic", "periodic task state not saved: %s", e)
            return
        self._periodic_seen, self._periodic_saved_at = changes, now

    def rules(self) -> Sequence[Any]:
        """The configured rules, and the built-in StorageFailing when there is storage (unless
        a configured rule already has that name)."""
        rules = self.config.rules
        if self.db is None or any(r.name == "StorageFailing" for r in rules):
            return rules
        builtin = StorageFailingRule(self.db.health, labels=dict(self.config.defaults.labels))
        if self._builtin is None or self._builtin.labels != builtin.labels:
            self._builtin = builtin  # one object while unchanged: the book caches by identity
        return (*rules, self._builtin)

    def check_storage(self) -> None:
        """Notice a deleted or replaced database file; write the state back after a failure."""
        if self.db is not None:
            self.db.check()

    def housekeeping(self) -> None:
        """Prune the notification log and expired silences (Alertmanager's Maintenance)."""
        if self.maintenance is None or (self.lease is not None and not self.lease.leading()):
            return
        with self._eval_lock:
            self.maintenance.run(self.clock.now())

    def page_ports(self) -> PagePorts:
        """What the status page reads (sentinel/api/page/ports.py), over these components."""
        alerts = _Alerts(self)

        def muted(alert: Alert, now: float) -> tuple[list[str], list[str]]:
            mute = alerts.mute(alert, now)
            return list(mute.silenced_by), list(mute.inhibited_by)

        return page_ports(
            clock=self.clock,
            config=lambda: self.config,
            alerts=lambda: self.book.alerts,
            muted=muted,
            store=self.store,
            route=lambda: self.route,
            values=self.values,
            depths=self.depths,
            silencer=self.silencer,
            notifications=self.notifications,
        )

    def _depths(self) -> list[tuple[str, Labels, float | None, float | None, bool | None]]:
        with self.store.lock:
            queues = list(self.store.queues.values())
        return [
            ("", Labels(queue=q.name), None if q.depth is None else float(q.depth), None, None)
            for q in queues
        ]

    def _history_bounds(self) -> maintenance.HistoryBounds:
        bounds = self.config.storage.notification_history
        return maintenance.HistoryBounds(bounds.keep, bounds.max_rows)

    def _live_groups(self) -> list[str]:
        return list(getattr(self.dispatcher, "groups", {}))

    def _alive(self, now: float) -> frozenset[str]:
        with self.store.lock:
            return frozenset(h for h, w in self.store.workers.items() if w.alive(now))

    def watch_liveness(self) -> None:
        """Evaluate at once when a worker dies or comes back, not at the next interval: a dead
        worker is the page that matters most, and its heartbeat deadline is known to the second."""
        if not any(liveness(r.kind) for r in self.config.rules):
            return
        if self._alive(self.clock.now()) != self._alive_at_eval:
            self.evaluate()

    def watch_pending(self) -> None:
        """Evaluate the moment a pending alert's `for` runs out: `for: 30s` with a 15 s interval
        fires at 30 s, not at the next tick up to 45 s. Once per deadline: an evaluation at or
        after it that could not tell (the alert stays pending) is not repeated every second."""
        deadline = self.book.next_deadline(self.config.rules, after=self._evaluated_at)
        if deadline is not None and deadline <= self.clock.now():
            self.evaluate()

    def refresh_shared(self) -> None:
        """With replicas, silences are made on any of them: read them again before deciding."""
        if self.lease is None or self.db is None:
            return
        try:
            self.silencer.refresh()
        except self.db.failures as e:
            self._ha_log.warning(
                self.clock.now(),
                "silences",
                "ha: silences not refreshed (%s); using the ones last read",
                e,
            )

    def dispatch(self) -> None:
        """Group timers run on their own clock, not only at evaluations."""
        if self.dispatcher is None:
            return
        self.refresh_shared()
        with self._eval_lock:
            self.dispatcher.tick(self.book.alerts.values(), self.clock.now())

    # -- daemon lifecycle ------------------------------------------------------------------

    def metrics_registry(self) -> CollectorRegistry:
        """/metrics: a registry of its own (never the global one), with one scrape-time
        collector per source."""
        registry = CollectorRegistry()
        registry.register(FactsCollector(self.store, self.clock))
        registry.register(AlertsCollector(self.book, lambda: [r.name for r in self.config.rules]))
        registry.register(DeliveryCollector(self.sender, lambda: list(self.config.channels)))
        if self.db is not None:
            registry.register(StorageCollector(self.db.health))
        if self.lease is not None:
            registry.register(HaCollector(self.lease.role))
        if self.recorder is not None:
            registry.register(RecordingCollector(self.recorder))
        return registry

    def api_ports(self) -> ApiPorts:
        """The API's view of this daemon: one narrow adapter per thing it reads."""
        return ApiPorts(
            clock=self.clock,
            settings=_Settings(self),
            alerts=_Alerts(self),
            rules=_Rules(self),
            silences=self.silencer,
            health=_Health(self),
            routing=_Routing(self),
            status=_Status(self),
            page=self.page_ports(),
        )

    def start(self, *, serve: bool = True) -> None:
        if serve:
            self.api = ApiServer(self.api_ports(), self.metrics_registry())
            self.api.start()
        if self.lease is not None:
            self.lease.start()  # the role is known before the first claim or evaluation
        if self.sender is not None:
            self.sender.start()
        if self.recorder is not None:
            self.recorder.start()
        self.events.start()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        start = datetime.now(UTC)
        scheduler.add_job(
            self.inspector.collect,
            "interval",
            id="inspect",
            seconds=self.config.celery.inspect_interval,
            next_run_time=start,
        )
        scheduler.add_job(
            self.evaluate, "interval", id="evaluate", seconds=self.config.evaluation.interval
        )
        scheduler.add_job(self.dispatch, "interval", id="dispatch", seconds=1.0)
        scheduler.add_job(self.watch_liveness, "interval", id="liveness", seconds=1.0)
        scheduler.add_job(self.watch_pending, "interval", id="pending", seconds=1.0)
        if self.db is not None:
            scheduler.add_job(
                self.check_storage, "interval", id="storage", seconds=STORAGE_CHECK_INTERVAL
            )
            scheduler.add_job(
                self.housekeeping, "interval", id="housekeeping", seconds=maintenance.INTERVAL
            )
        scheduler.start()
        self.scheduler = scheduler
        log.info(
            "sentinel started: %d rule(s), broker %s, evaluation every %gs, inspect every %gs",
            len(self.config.rules),
            maybe_sanitize_url(self.config.celery.broker_url),
            self.config.evaluation.interval,
            self.config.celery.inspect_interval,
        )

    def _external_url(self) -> str:
        return self.config.server.base_url

    def reload(self, new: Config) -> list[str]:
        """Swap in a new config without losing alert state; returns warnings for the operator.

        Rules, routing, inhibition, channels and the evaluation interval take effect at once.
        The broker, storage, server and limits sections are read at start-up only: a change
        there is reported and needs a restart. Alerts of removed rules resolve at the next tick.
        """
        old = self.config
        warnings = []
        fixed = {}
        for section in ("celery", "storage", "ha", "server", "limits", "record"):
            if getattr(new, section) != getattr(old, section):
                warnings.append(f"{section}: changes need a restart; keeping the running values")
                fixed[section] = getattr(old, section)
        config = new.model_copy(update=fixed) if fixed else new
        with self._eval_lock:
            self.config = config
            self.store.set_retention(config.max_window)
            self.store.fact_retention = config.max_fact_window
            try:  # new periodic_task rules may need periods the old ones did not
                self.store.periodic.schedule = beat_periods(config)
            except ConfigError as e:
                warnings.extend(f"celery.app: {line}; keeping the old periods" for line in e.errors)
            self.inhibitor = Inhibitor(config.inhibit)
            self.route = build_route(config)
            self.book.resolved_retention = resolved_retention(self.route)
            if self.dispatcher is not None and self.sender is not None:
                self.sender.reconfigure(config.channels)
                self.dispatcher.reconfigure(self.route, config.channels, self.inhibitor)
        if self.scheduler is not None and config.evaluation != old.evaluation:
            self.scheduler.reschedule_job(
                "evaluate", trigger="interval", seconds=config.evaluation.interval
            )
        log.info(
            "configuration reloaded: %d rule(s), %d channel(s)",
            len(config.rules),
            len(config.channels),
        )
        for warning in warnings:
            log.warning("reload: %s", warning)
        return warnings

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        self.events.stop()
        if self.recorder is not None:
            self.recorder.stop()
        if self.sender is not None:
            self.sender.stop()
        if self.lease is not None:
            self.lease.stop()  # after the last send: released, a follower takes over at once
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.queues is not None:
            self.queues.close()
        if self.db is not None:
            with self._eval_lock:
                self._save_periodic(self.clock.now(), force=True)  # how long this run watched
                self.periodic_repo = None  # stop() may run again; the database is closed
            self.db.close()
        log.info("sentinel stopped")


# -- the API's ports (api/ports.py) over the running components ------------------------------
# Each reads through the Sentinel at call time, because a reload swaps the config, the
# inhibitor and the route under it.


class _Settings:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def server(self) -> ServerConfig:
        return self._sentinel.config.server


class _Alerts:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def alerts(self) -> list[Alert]:
        # list() of a dict view copies it in one step; the evaluator may be replacing entries.
        return list(self._sentinel.book.alerts.values())

    def mute(self, alert: Alert, now: float) -> Mute:
        s = self._sentinel
        if s.dispatcher is not None:
            return s.dispatcher.mute(alert, now)
        # No storage, so no dispatcher (a one-shot run): the silences and inhibitions alone.
        return Mute(
            tuple(s.silencer.muted_by(alert.labels, now)),
            tuple(s.inhibitor.muted_by(alert.labels, now)),
        )


class _Rules:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def rules(self) -> Sequence[RuleBase]:
        return self._sentinel.config.rules


class _Health:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def health(self) -> HealthFacts:
        s = self._sentinel
        with s.store.lock:
            probes = {name: replace(p) for name, p in s.store.probes.items()}
        return HealthFacts(
            events_connected=s.events.connected.is_set(),
            probes=probes,
            storage=s.db.health() if s.db is not None else None,
            celery=s.config.celery,
            role=s.lease.role() if s.lease is not None else None,
        )


class _Routing:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def route(self) -> RouteNode | None:
        return self._sentinel.route

    def receivers(self) -> Sequence[str]:
        return receiver_names(self._sentinel.config, self._sentinel.route)


class _Status:
    def __init__(self, sentinel: Sentinel) -> None:
        self._sentinel = sentinel

    def status(self) -> StatusFacts:
        s = self._sentinel
        config = s.config
        role = s.lease.role() if s.lease is not None else None
        return StatusFacts(
            replica=role.replica if role is not None else socket.gethostname(),
            # The replicas sentinel knows of: the lease holder, when it is another one.
            peers=(role.holder,) if role and role.holder and role.holder != role.replica else (),
            started_at=s.store.started_at,
            evaluation_interval=config.evaluation.interval,
            receivers=tuple(receiver_names(config, s.route)),
            inhibit_rules=tuple((r.source, r.target, r.equal) for r in s.inhibitor.rules),
            time_intervals=(*config.time_intervals, *config.mute_time_intervals),
            role=role,
        )


def resolved_retention(route: object | None) -> float:
    """Keep resolved alerts long enough for the slowest group to flush their resolve."""
    longest = 0.0
    stack = [route] if route is not None else []
    while stack:
        node = stack.pop()
        longest = max(longest, node.group_wait + 2 * node.group_interval)  # type: ignore[attr-defined]
        stack.extend(node.children)  # type: ignore[attr-defined]
    return max(900.0, longest)


def log_transition(t: Transition) -> None:
    alert = t.alert
    before = t.before.value if t.before else "inactive"
    after = alert.state.value if alert else "inactive"
    level = logging.WARNING if alert is not None and alert.state is State.FIRING else logging.INFO
    value = alert.value if alert is not None else None
    threshold = alert.threshold if alert is not None else None
    summary = alert.annotations.get("summary", "") if alert is not None else ""
    log.log(
        level,
        "alert %s %s -> %s (value=%s threshold=%s) %s",
        _labels_text(t.labels),
        before,
        after,
        _num(value),
        _num(threshold),
        summary,
        extra={
            "labels": dict(t.labels),
            "fingerprint": t.fingerprint,
            "from_state": before,
            "to_state": after,
            "value": value,
            "threshold": threshold,
        },
    )


def _labels_text(labels: Any) -> str:
    name = labels.get("alertname", "")
    rest = ",".join(f"{k}={v}" for k, v in labels.items() if k != "alertname")
    return f"{name}{{{rest}}}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
