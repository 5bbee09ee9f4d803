"""From alerts to decided notifications: route -> group -> (timers) -> mute -> dedup -> outbox.

The dispatcher runs on every tick with the book's current alerts. Groups live in memory and are
rebuilt from the alerts after a restart; what each channel was told lives in the notification
log, so a rebuilt group decides exactly as the old one would have (no re-page, no lost resolve).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sentinel.model import Alert, Labels, State
from sentinel.notify.dedup import notify_reason
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.route import RouteNode
from sentinel.notify.silence import Silencer
from sentinel.storage.nflog import NotificationLog
from sentinel.storage.outbox import Outbox
from sentinel.storage.sqlite import Database

log = logging.getLogger("sentinel.notify")


@dataclass
class Group:
    key: str
    route: RouteNode
    labels: Labels
    next_flush: float


def group_key(route: RouteNode, labels: Labels) -> str:
    return f"{route.key}:{labels!r}"


@dataclass(frozen=True, slots=True)
class Mute:
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.silenced_by or self.inhibited_by)


class Dispatcher:
    def __init__(
        self,
        route: RouteNode | None,
        channels: Mapping[str, Any],
        db: Database,
        silencer: Silencer,
        inhibitor: Inhibitor,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.route = route
        self.channels = channels
        self.db = db
        self.outbox = Outbox(db)
        self.nflog = NotificationLog(db)
        self.silencer = silencer
        self.inhibitor = inhibitor
        self.groups: dict[str, Group] = {}
        self.on_queued = on_queued
        self._lock = threading.Lock()

    def reconfigure(
        self, route: RouteNode | None, channels: Mapping[str, Any], inhibitor: Inhibitor
    ) -> None:
        with self._lock:
            self.route = route
            self.channels = channels
            self.inhibitor = inhibitor
            # Timers restart with the new tree; the notification log keeps dedup exact.
            self.groups.clear()

    def mute(self, alert: Alert, now: float) -> Mute:
        return Mute(
            tuple(self.silencer.muted_by(alert.labels, now)),
            tuple(self.inhibitor.muted_by(alert.labels, now)),
        )

    def tick(self, alerts: Iterable[Alert], now: float) -> int:
        """Flush the groups whose timer is due; returns how many notifications were queued."""
        with self._lock:
            alerts = [a for a in alerts if a.state is not State.PENDING]
            self.inhibitor.update(alerts)
            if self.route is None:
                return 0
            members: dict[str, tuple[RouteNode, Labels, list[Alert]]] = {}
            for alert in alerts:
                for node in self.route.match(alert.labels):
                    labels = Labels(node.group_labels(alert.labels))
                    key = group_key(node, labels)
                    members.setdefault(key, (node, labels, []))[2].append(alert)
            queued = 0
            for key, (node, labels, group_alerts) in members.items():
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = Group(key, node, labels, now + node.group_wait)
                if now >= group.next_flush:
                    queued += self._flush(group, group_alerts, now)
                    group.next_flush = now + node.group_interval
            for key in [k for k in self.groups if k not in members]:
                del self.groups[key]
        if queued and self.on_queued is not None:
            self.on_queued()
        return queued

    def _flush(self, group: Group, alerts: list[Alert], now: float) -> int:
        audible = [a for a in alerts if not self.mute(a, now)]
        if not audible:
            # Everything is muted: say nothing (withdraw a page still queued) and leave the log
            # alone, as Alertmanager does, so the end of a silence is not a brand-new page.
            with self.db.transaction() as conn:
                for channel in group.route.channels:
                    Outbox.cancel(conn, group.key, channel)
            return 0
        firing = [a for a in audible if a.state is State.FIRING]
        resolved = [a for a in audible if a.state is State.RESOLVED]
        firing_fps = frozenset(a.fingerprint for a in firing)
        resolved_fps = frozenset(a.fingerprint for a in resolved)
        queued = 0
        with self.db.transaction() as conn:
            for channel in group.route.channels:
                config = self.channels.get(channel)
                send_resolved = bool(getattr(config, "send_resolved", True))
                last = self.nflog.get(group.key, channel, conn)
                reason = notify_reason(
                    last,
                    firing_fps,
                    resolved_fps,
                    repeat=group.route.repeat_interval,
                    now=now,
                    send_resolved=send_resolved,
                )
                if reason is None:
                    if Outbox.cancel(conn, group.key, channel):
                        log.info(
                            "notification to %s for %s cancelled: nothing left to say",
                            channel,
                            group.key,
                        )
                    continue
                Outbox.put(
                    conn,
                    group_key=group.key,
                    channel=channel,
                    group_labels=group.labels,
                    status="firing" if firing else "resolved",
                    alerts=firing + (resolved if send_resolved else []),
                    firing=sorted(firing_fps),
                    resolved=sorted(resolved_fps),
                    reason=reason,
                    now=now,
                )
                queued += 1
                log.debug("queued %s notification to %s for %s", reason, channel, group.key)
        return queued
