"""The notification side of one daemon over a real SQLite file, shared by the pipeline, sender,
soak and storage tests: a Dispatcher and a Sender with fake channels, and alerts to feed it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sentinel.channels.base import Notification
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.nflog import LogEntry, NotificationLog
from sentinel.notify.outbox import Outbox, OutboxRow
from sentinel.notify.pipeline import Dispatcher
from sentinel.notify.route import build
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silencer
from sentinel.notify.silence.repo import SqlSilenceRepo
from tests.helpers import T0

GROUP_WAIT, GROUP_INTERVAL, REPEAT = 30.0, 300.0, 4 * 3600.0

CONFIG = """
route:
  channels: [pager]
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - match: {team: quiet}
      channels: [quiet]
    - match: {team: both}
      channels: [pager, chat]
inhibit:
  - source: {alertname: NoLiveWorkers}
    target: {alertname: QueueBacklog}
    equal: [env]
channels:
  pager: {type: log}
  chat: {type: log}
  quiet: {type: log, send_resolved: false}
"""


class FakeNotifier:
    """Stands in for a channel's remote end: records what it is sent, or fails as told."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Notification] = []
        self.attempts = 0
        self.errors: list[Exception] = []  # raised one per send, in order
        self.always: Exception | None = None  # raised on every send while set
        self.during_send: Callable[[], None] | None = None  # runs once, mid-send

    def send(self, notification: Notification) -> dict[str, str]:
        self.attempts += 1
        if self.during_send is not None:
            hook, self.during_send = self.during_send, None
            hook()
        if self.errors:
            raise self.errors.pop(0)
        if self.always is not None:
            raise self.always
        self.sent.append(notification)
        return {"ts": f"{self.name}-{len(self.sent)}"}


class Harness:
    """One daemon's notification side: a Dispatcher and a Sender on one SQLite file."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        config = parse(CONFIG, env={})
        assert config.route is not None
        self.clock = clock
        self.db = Database(path)
        self.silencer = Silencer(SqlSilenceRepo(self.db))
        self.notifiers = {name: FakeNotifier(name) for name in config.channels}
        self.dispatcher = Dispatcher(
            build(config.route),
            config.channels,
            self.db,
            self.silencer,
            Inhibitor(config.inhibit),
        )
        self.sender = Sender(self.db, config.channels, clock, notifiers=self.notifiers)
        self.outbox = Outbox(self.db)
        self.nflog = NotificationLog(self.db)
        self._seen = dict.fromkeys(self.notifiers, 0)

    def at(self, offset: float, alerts: list[Alert], drain: bool = True) -> list[Notification]:
        """Move to T0+offset, tick once, deliver what is due; returns what was sent."""
        self.clock.set(T0 + offset)
        self.dispatcher.tick(alerts, self.clock.now())
        if drain:
            self.sender.drain()
        return self.new()

    def run(
        self, start: float, end: float, alerts: list[Alert], every: float = 15.0
    ) -> list[Notification]:
        """Tick every `every` seconds from T0+start to T0+end inclusive, as the daemon does."""
        out: list[Notification] = []
        t = start
        while t <= end:
            out += self.at(t, alerts)
            t += every
        return out

    def new(self) -> list[Notification]:
        out: list[Notification] = []
        for name, notifier in self.notifiers.items():
            out += notifier.sent[self._seen[name] :]
            self._seen[name] = len(notifier.sent)
        return out

    def rows(self) -> list[OutboxRow]:
        return self.outbox.all()

    def log(self, notification_or_row: Notification | OutboxRow) -> LogEntry | None:
        n = notification_or_row
        return self.nflog.get(n.group_key, n.channel)

    def close(self) -> None:
        self.db.close()


def firing(alertname: str = "QueueBacklog", at: float = 0.0, **labels: str) -> Alert:
    return Alert(
        rule=alertname,
        labels=Labels({"alertname": alertname, "severity": "warning", "env": "prod", **labels}),
        annotations={"summary": f"{alertname} {labels}"},
        state=State.FIRING,
        active_at=T0 + at,
        value=1500.0,
        threshold=1000.0,
        fired_at=T0 + at,
        updated_at=T0 + at,
    )


def resolve(alert: Alert, at: float) -> Alert:
    return replace(alert, state=State.RESOLVED, resolved_at=T0 + at, updated_at=T0 + at)


def fps(*alerts: Alert) -> frozenset[str]:
    return frozenset(a.fingerprint for a in alerts)


def decide(h: Harness, alerts: list[Alert]) -> None:
    """Tick through group_wait without delivering: the first decision sits in the outbox."""
    assert h.at(0, alerts, drain=False) == []
    assert h.at(GROUP_WAIT, alerts, drain=False) == []
    assert len(h.rows()) >= 1
