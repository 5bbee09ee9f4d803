"""What the status page reads, as small Protocols bundled in PagePorts: the page knows these and
nothing of the components behind them (the composition root builds an adapter for each,
sentinel/page_adapters.py), so a test can render it over fakes. Every read returns copies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sentinel.alerts.values import Series
from sentinel.clock import Clock
from sentinel.config.schema import ServerConfig
from sentinel.model import Alert, Labels
from sentinel.notify.history import NotificationHistory
from sentinel.notify.silence import Silence
from sentinel.rules.base import RuleBase


@dataclass(frozen=True, slots=True)
class WorkerView:
    hostname: str
    alive: bool
    last_seen: float
    active: int
    processed: int
    queues: tuple[str, ...]
    version: str


@dataclass(frozen=True, slots=True)
class QueueView:
    name: str
    depth: int | None
    consumers: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class GroupRef:
    """An aggregation group an alert belongs to, as the dispatcher keys it."""

    route: str  # the route node's key
    labels: Labels  # the group labels
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Muting:
    silenced_by: list[str]
    inhibited_by: list[str]


@dataclass(frozen=True, slots=True)
class PageSettings:
    """The parts of the configuration the page shows (swapped on reload)."""

    rules: Sequence[RuleBase]
    server: ServerConfig
    channels: tuple[str, ...]
    window: float  # seconds of value history: history_points x evaluation interval


class AlertsPort(Protocol):
    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, firing first."""
        ...

    def muting(self, alert: Alert, now: float) -> Muting: ...


class ClusterPort(Protocol):
    def workers(self, now: float) -> list[WorkerView]: ...

    def queues(self) -> list[QueueView]: ...

    def last_event_at(self) -> float | None: ...


class RoutingPort(Protocol):
    def groups(self, labels: Mapping[str, str]) -> list[GroupRef]:
        """The groups an alert with these labels joins (empty: no route configured)."""
        ...


class ValuesPort(Protocol):
    def series(self, rule: str | None = None) -> list[Series]: ...


class SilencesPort(Protocol):
    def all(self) -> list[Silence]: ...


class SettingsPort(Protocol):
    def settings(self) -> PageSettings: ...


@dataclass(frozen=True, slots=True)
class PagePorts:
    clock: Clock
    settings: SettingsPort
    alerts: AlertsPort
    cluster: ClusterPort
    routing: RoutingPort
    values: ValuesPort  # per alert label set
    depths: ValuesPort  # per queue (label `queue`)
    silences: SilencesPort
    notifications: NotificationHistory | None  # None: no storage
