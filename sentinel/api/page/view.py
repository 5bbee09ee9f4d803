"""What the status page shows, gathered from its ports into plain values for the template:
alert groups as the route groups them, rules with their instances' value history, workers,
queues, silences and the notification history. No HTML here (the template escapes it all)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from sentinel.alerts.values import ACTIVE, Firings, Series, firings
from sentinel.api.page.charts import Chart, chart
from sentinel.api.page.ports import GroupRef, PagePorts, PageSettings
from sentinel.display import format_value
from sentinel.model import Alert, Labels, State
from sentinel.notify.history import Attempt
from sentinel.notify.silence import Silence
from sentinel.units import format_duration

# The page stays small and fast whatever the cluster: past these, rows are counted, not shown.
MAX_ALERTS = 500
MAX_INSTANCES = 12  # per rule, those nearest their threshold first
MAX_WORKERS = 500
MAX_QUEUES = 200
MAX_SILENCES = 200
HISTORY_ROWS = 100
# Labels every alert has, left out of an alert's "instance" text.
COMMON = ("alertname", "severity")
SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}
OPS = {(True, False): "=", (False, False): "!=", (True, True): "=~", (False, True): "!~"}


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def instance(labels: Mapping[str, str], rule_labels: Mapping[str, str] | None = None) -> str:
    rule_labels = rule_labels or {}
    parts = [f"{k}={v}" for k, v in labels.items() if k not in COMMON and rule_labels.get(k) != v]
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert: Alert
    name: str
    severity: str
    instance: str
    value: str
    threshold: str
    since: str
    since_at: float
    silenced_by: list[str]
    inhibited_by: list[str]
    summary: str
    matchers: str  # JSON list of "name=value" lines, for "silence this alert"


@dataclass(slots=True)
class AlertGroup:
    route: str
    labels: str
    channels: tuple[str, ...]
    alerts: list[AlertRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance: str
    value: str
    threshold: str
    chart: Chart
    firings: Firings
    fingerprint: str


@dataclass(frozen=True, slots=True)
class RuleRow:
    name: str
    kind: str
    condition: str
    for_: str
    severity: str
    state: str
    alerts: int
    instances: list[InstanceRow]
    more: int  # instances not shown


@dataclass(frozen=True, slots=True)
class WorkerRow:
    hostname: str
    alive: bool
    heartbeat: str
    active: int
    processed: int
    queues: str
    version: str


@dataclass(frozen=True, slots=True)
class QueueRow:
    name: str
    depth: str
    consumers: str
    error: str | None
    chart: Chart


@dataclass(frozen=True, slots=True)
class SilenceRow:
    silence: Silence
    state: str
    matchers: str
    starts: float
    ends: float
    ends_in: str


@dataclass(slots=True)
class Page:
    now: float
    prefix: str
    alerts_total: int
    firing: int
    pending: int
    groups: list[AlertGroup]
    rules: list[RuleRow]
    workers: list[WorkerRow]
    workers_alive: int
    workers_total: int
    queues: list[QueueRow]
    silences: list[SilenceRow]
    history: list[Attempt]
    history_channels: list[str]
    history_filter: dict[str, str]
    last_event: str
    token_required: bool
    history_window: str = ""
    hidden: dict[str, int] = field(default_factory=dict)


def _matchers(labels: Labels) -> str:
    return json.dumps([f'{k}="{v}"' for k, v in labels.items()])


def alert_groups(
    ports: PagePorts, settings: PageSettings, alerts: list[Alert], now: float
) -> list[AlertGroup]:
    """As the route groups them: one group per (route node, group labels), as the dispatcher
    keys them; without a route, one group of everything."""
    kinds = {r.name: r.kind for r in settings.rules}
    groups: dict[tuple[str, Labels], AlertGroup] = {}
    for alert in alerts:
        muting = ports.alerts.muting(alert, now)
        kind = kinds.get(alert.rule)
        since_at = (alert.fired_at if alert.state is State.FIRING else alert.active_at) or now
        row = AlertRow(
            alert=alert,
            name=alert.labels.get("alertname", alert.rule),
            severity=alert.labels.get("severity", ""),
            instance=instance(alert.labels),
            value=format_value(kind, alert.value),
            threshold=format_value(kind, alert.threshold),
            since=ago(now - since_at),
            since_at=since_at,
            silenced_by=muting.silenced_by,
            inhibited_by=muting.inhibited_by,
            summary=alert.annotations.get("summary", ""),
            matchers=_matchers(alert.labels),
        )
        refs: list[GroupRef | None] = [*ports.routing.groups(alert.labels)] or [None]
        for ref in refs:
            key = ("", Labels()) if ref is None else (ref.route, ref.labels)
            group = groups.get(key)
            if group is None:
                labels = ""
                if ref is not None:
                    labels = ", ".join(f"{k}={v}" for k, v in ref.labels.items()) or "(all)"
                group = groups[key] = AlertGroup(
                    key[0], labels, () if ref is None else ref.channels
                )
            group.alerts.append(row)
    for g in groups.values():
        g.alerts.sort(key=lambda r: (SEVERITY_ORDER.get(r.severity, 9), r.alert.state.value))
    return sorted(
        groups.values(), key=lambda g: min(SEVERITY_ORDER.get(r.severity, 9) for r in g.alerts)
    )


def _nearness(series: Series) -> float:
    """How close the latest value is to its threshold, for "nearest first" (held first)."""
    last = series.latest
    if last is None or last.value is None:
        return float("inf")
    if last.verdict == ACTIVE:
        return -1.0
    if not series.threshold:
        return abs(last.value)
    return abs(series.threshold - last.value) / abs(series.threshold)


def rule_rows(ports: PagePorts, settings: PageSettings, alerts: list[Alert]) -> list[RuleRow]:
    by_rule: dict[str, list[Series]] = {}
    for s in ports.values.series():
        by_rule.setdefault(s.rule, []).append(s)
    rows = []
    for rule in settings.rules:
        mine = [a for a in alerts if a.rule == rule.name]
        firing = sum(1 for a in mine if a.state is State.FIRING)
        series = sorted(by_rule.get(rule.name, []), key=_nearness)
        instances = []
        for s in series[:MAX_INSTANCES]:
            last = s.latest
            points = s.points
            instances.append(
                InstanceRow(
                    instance=instance(s.labels, rule.labels) or "(cluster)",
                    value=format_value(rule.kind, last.value if last else None),
                    threshold=format_value(rule.kind, s.threshold),
                    chart=chart(points, s.threshold),
                    firings=firings(points, rule.for_),
                    fingerprint=s.labels.fingerprint,
                )
            )
        rows.append(
            RuleRow(
                name=rule.name,
                kind=rule.kind,
                condition=rule.describe(),
                for_=format_duration(rule.for_),
                severity=rule.severity.value,
                state="firing" if firing else "pending" if mine else "inactive",
                alerts=len(mine),
                instances=instances,
                more=max(0, len(series) - MAX_INSTANCES),
            )
        )
    return rows


def worker_rows(ports: PagePorts, now: float) -> tuple[list[WorkerRow], int, int]:
    workers = sorted(ports.cluster.workers(now), key=lambda w: (not w.alive, w.hostname))
    rows = [
        WorkerRow(
            hostname=w.hostname,
            alive=w.alive,
            heartbeat=ago(now - w.last_seen),
            active=w.active,
            processed=w.processed,
            queues=", ".join(w.queues),
            version=w.version,
        )
        for w in workers[:MAX_WORKERS]
    ]
    return rows, sum(1 for w in workers if w.alive), len(workers)


def queue_rows(ports: PagePorts) -> tuple[list[QueueRow], int]:
    queues = sorted(ports.cluster.queues(), key=lambda q: (-(q.depth or 0), q.name))
    history = {s.labels.get("queue", ""): s for s in ports.depths.series()}
    rows = []
    for q in queues[:MAX_QUEUES]:
        s = history.get(q.name)
        rows.append(
            QueueRow(
                name=q.name,
                depth="?" if q.depth is None else str(q.depth),
                consumers="?" if q.consumers is None else str(q.consumers),
                error=q.error,
                chart=chart(s.points if s else (), None),
            )
        )
    return rows, max(0, len(queues) - MAX_QUEUES)


def _silence_sort(s: Silence, now: float) -> tuple[int, float]:
    # Alertmanager's order: active by soonest end, pending by soonest start, expired newest first.
    state = s.state(now)
    if state == "active":
        return (0, s.ends_at)
    if state == "pending":
        return (1, s.starts_at)
    return (2, -s.ends_at)


def silence_rows(ports: PagePorts, now: float) -> list[SilenceRow]:
    silences = sorted(ports.silences.all(), key=lambda s: _silence_sort(s, now))
    rows = []
    for s in silences[:MAX_SILENCES]:
        matchers = ", ".join(
            f'{m.name}{OPS[(m.is_equal, m.is_regex)]}"{m.value}"' for m in s.matchers
        )
        rows.append(
            SilenceRow(s, s.state(now), matchers, s.starts_at, s.ends_at, ago(s.ends_at - now))
        )
    return rows


def build(ports: PagePorts, history_filter: dict[str, str]) -> Page:
    now = ports.clock.now()
    settings = ports.settings.settings()
    alerts = ports.alerts.alerts()
    shown = alerts[:MAX_ALERTS]
    workers, alive, total = worker_rows(ports, now)
    queues, more_queues = queue_rows(ports)
    history = ports.notifications
    attempts: list[Attempt] = []
    channels: list[str] = []
    if history is not None:
        attempts = history.list(
            channel=history_filter.get("channel") or None,
            alert=history_filter.get("alert") or None,
            limit=HISTORY_ROWS,
        )
        channels = sorted({*history.channels(), *settings.channels})
    server = settings.server
    last_event = ports.cluster.last_event_at()
    return Page(
        now=now,
        prefix=server.path_prefix,
        alerts_total=len(alerts),
        firing=sum(1 for a in alerts if a.state is State.FIRING),
        pending=sum(1 for a in alerts if a.state is State.PENDING),
        groups=alert_groups(ports, settings, shown, now),
        rules=rule_rows(ports, settings, alerts),
        workers=workers,
        workers_alive=alive,
        workers_total=total,
        queues=queues,
        silences=silence_rows(ports, now),
        history=attempts,
        history_channels=channels,
        history_filter=history_filter,
        last_event=ago(now - last_event) + " ago" if last_event else "never",
        token_required=server.token is not None and bool(server.token.get_secret_value()),
        history_window=format_duration(settings.window),
        hidden={
            "alerts": len(alerts) - len(shown),
            "workers": max(0, total - MAX_WORKERS),
            "queues": more_queues,
        },
    )
