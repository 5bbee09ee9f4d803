"""What the HTTP API reads and writes, as small Protocols: the API knows these, never the
composition root that satisfies them (app.py's Sentinel does, structurally), so `api/` imports
nothing of `app.py` and a test can serve the API over fakes.

Reads: the alerts (book), the loaded rules and server settings (config, swapped on reload),
how an alert is muted (dispatcher, or silencer + inhibitor without one), readiness (store
probes, event stream, storage health). Writes: silences.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol

from sentinel.clock import Clock
from sentinel.config import Config
from sentinel.db.health import StorageHealth
from sentinel.facts.store import FactStore
from sentinel.model import Alert
from sentinel.notify.pipeline import Mute
from sentinel.notify.silence import Silence


class Alerts(Protocol):
    @property
    def alerts(self) -> Mapping[str, Alert]: ...


class Dispatching(Protocol):
    def mute(self, alert: Alert, now: float) -> Mute: ...


class MutedBy(Protocol):
    def muted_by(self, labels: Mapping[str, str], now: float) -> list[str]: ...


class Silences(MutedBy, Protocol):
    """Read and written by /api/v1/silences."""

    def all(self) -> list[Silence]: ...

    def get(self, silence_id: str) -> Silence | None: ...

    def put(self, silence: Silence) -> Silence: ...

    def expire(self, silence_id: str, now: float) -> Silence | None: ...


class Stream(Protocol):
    @property
    def connected(self) -> threading.Event: ...


class Storage(Protocol):
    def health(self) -> StorageHealth: ...


class ApiPorts(Protocol):
    """Everything the API touches, each through one of the Protocols above."""

    @property
    def clock(self) -> Clock: ...

    @property
    def config(self) -> Config: ...

    @property
    def book(self) -> Alerts: ...

    @property
    def dispatcher(self) -> Dispatching | None: ...

    @property
    def silencer(self) -> Silences: ...

    @property
    def inhibitor(self) -> MutedBy: ...

    @property
    def store(self) -> FactStore: ...

    @property
    def events(self) -> Stream: ...

    @property
    def db(self) -> Storage | None: ...
