"""What the HTTP API reads and writes: one small Protocol per thing, bundled in ApiPorts.

The API knows these and nothing of the composition root: app.py builds an adapter for each
over the running components (and swaps what they read on reload), a test can serve the API
over fakes, and a new endpoint says in its constructor which ports it reads. Add a port for a
new thing read rather than widening one. The status page reads its own (api/page/ports.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.api.page.ports import PagePorts
from sentinel.clock import Clock
from sentinel.config.schema import CeleryConfig, ServerConfig
from sentinel.db.health import StorageHealth
from sentinel.facts.store import Probe
from sentinel.ha.role import Role
from sentinel.model import Alert
from sentinel.notify.matchers import Matcher
from sentinel.notify.pipeline import Mute
from sentinel.notify.route import RouteNode
from sentinel.notify.silence import Silence
from sentinel.rules.base import RuleBase


class AlertsPort(Protocol):
    """The alert book's alerts, and what mutes one as the dispatcher would decide now."""

    def alerts(self) -> list[Alert]: ...

    def mute(self, alert: Alert, now: float) -> Mute: ...


class RulesPort(Protocol):
    """The loaded rules (swapped on reload)."""

    def rules(self) -> Sequence[RuleBase]: ...


class SilencesPort(Protocol):
    """Read and written by the silence endpoints."""

    def all(self) -> list[Silence]: ...

    def get(self, silence_id: str) -> Silence | None: ...

    def put(self, silence: Silence) -> Silence: ...

    def expire(self, silence_id: str, now: float) -> Silence | None: ...


@dataclass(frozen=True, slots=True)
class HealthFacts:
    """What readiness is judged from, copied at one moment."""

    events_connected: bool  # subscribed to the event stream
    probes: Mapping[str, Probe]  # each collector's last success and failure (copies)
    storage: StorageHealth | None  # None: no storage (a one-shot run)
    celery: CeleryConfig  # the inspect interval and timeout that make a round stale
    role: Role | None = None  # this replica's HA role (sentinel/ha); None: no HA


class HealthPort(Protocol):
    def health(self) -> HealthFacts: ...


class SettingsPort(Protocol):
    """The server section (re-read on every request: a reload may change the token)."""

    def server(self) -> ServerConfig: ...


# --- what /api/v2 reads besides the above ----------------------------------------------------


class RoutingPort(Protocol):
    """The routing tree in force (swapped on reload) and every receiver name it can send to."""

    def route(self) -> RouteNode | None: ...

    def receivers(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """What /api/v2/status reports, copied at one moment."""

    replica: str  # this process's name (the host name)
    peers: tuple[str, ...]  # the other replicas, when there are any
    started_at: float | None
    evaluation_interval: float  # seconds; a firing alert's endsAt is four of them ahead
    receivers: tuple[str, ...]
    inhibit_rules: tuple[tuple[tuple[Matcher, ...], tuple[Matcher, ...], tuple[str, ...]], ...]
    time_intervals: tuple[Mapping[str, Any], ...]  # as configured
    role: Role | None = None  # HA (sentinel/ha): who leads, this replica's role; None: no HA


class StatusPort(Protocol):
    def status(self) -> StatusFacts: ...


@dataclass(frozen=True, slots=True)
class ApiPorts:
    clock: Clock
    settings: SettingsPort
    alerts: AlertsPort
    rules: RulesPort
    silences: SilencesPort
    health: HealthPort
    routing: RoutingPort
    status: StatusPort
    page: PagePorts | None = None  # the status page's (None: the page is not served)
