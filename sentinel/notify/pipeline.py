"""From alerts to decided notifications: route -> group -> (timers) -> mute -> dedup -> outbox.

The dispatcher runs on every tick with the book's current alerts. Groups live in memory and are
rebuilt from the alerts after a restart; what each channel was told lives in the notification
log, so a rebuilt group decides exactly as the old one would have (no re-page, no lost resolve).

A group ends as in Alertmanager (`aggrGroup.flush` deletes the resolved alerts it notified; the
dispatcher drops an empty group): a resolved alert leaves its group once a flush has dealt with
it and nothing that flush queued is still waiting in the outbox. A group left with no member is
deleted, so the next alert with its labels starts a new group: group_wait, then group_interval,
never the old group's tick. The book keeps resolved alerts longer (to show them); the
dispatcher remembers which of them are done, per group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sentinel.db.engine import Engine, Fenced
from sentinel.model import Alert, Labels, State
from sentinel.notify.dedup import notify_reason
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.outbox import Outbox
from sentinel.notify.rekey import rekey
from sentinel.notify.route import RouteNode
from sentinel.notify.silence import Silencer

log = logging.getLogger("sentinel.notify")


@dataclass
class Group:
    key: str
    route: RouteNode
    labels: Labels
    next_flush: float
    # Resolved alerts (fingerprint -> resolved_at) the last flush dealt with: they leave the
    # group once nothing that flush queued is still in the outbox (delivered, or nothing to say).
    flushed_resolved: dict[str, float | None] = field(default_factory=dict)
    # A flush fell due while this replica could not decide (an HA follower, or storage
    # refused it): it is made at the next tick that can, not a group_interval later.
    owed: bool = False


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
        db: Engine,
        silencer: Silencer,
        inhibitor: Inhibitor,
        on_queued: Callable[[], None] | None = None,
        may_decide: Callable[[], bool] = lambda: True,
    ) -> None:
        self.route = route
        # Whether this replica writes decisions (sentinel/ha: only the lease holder does); a
        # follower keeps its groups and timers warm without flushing them.
        self.may_decide = may_decide
        self.channels = channels
        self.db = db
        self.outbox = Outbox(db)
        self.nflog = NotificationLog(db)
        self.silencer = silencer
        self.inhibitor = inhibitor
        self.groups: dict[str, Group] = {}
        # (group key, fingerprint) -> resolved_at of resolved alerts whose group is done with
        # them: they count as members no more (a re-fire has no resolved_at, so it counts again).
        self.done: dict[tuple[str, str], float | None] = {}
        self.on_queued = on_queued
        self._lock = threading.Lock()
        rekey(db, route)  # state written before 0.2 under its node keys

    def reconfigure(
        self, route: RouteNode | None, channels: Mapping[str, Any], inhibitor: Inhibitor
    ) -> None:
        with self._lock:
            self.route = route
            self.channels = channels
            self.inhibitor = inhibitor
            # A group whose route is unchanged keeps its timers (a reload must not delay a
            # resolve or a page); the others start over, and the notification log keeps dedup
            # exact either way.
            nodes = {n.key: n for n in walk(route)} if route is not None else {}
            for key, group in list(self.groups.items()):
                node = nodes.get(group.route.key)
                if node is not None and same_route(node, group.route):
                    group.route = node
                else:
                    del self.groups[key]
            self.done = {k: v for k, v in self.done.items() if k[0] in self.groups}

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
            self._forget_refired(alerts)
            members = self._members(alerts)
            queued = 0
            deciding = self.may_decide()
            failures: tuple[type[Exception], ...] = (Fenced, *self.db.failures)
            for key, (node, labels, group_alerts) in members.items():
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = Group(key, node, labels, now + node.group_wait)
                due = now >= group.next_flush
                if due or (group.owed and deciding):
                    group.owed = not deciding
                    if deciding:
                        try:
                            queued += self._flush(group, group_alerts, now)
                        except failures as e:
                            group.owed = True  # rolled back whole; decided again next tick
                            log.warning("group %s not flushed: %s", key, e)
                if due:
                    group.next_flush = now + node.group_interval
            self._retire(members)
        if queued and self.on_queued is not None:
            self.on_queued()
        return queued

    def _members(self, alerts: list[Alert]) -> dict[str, tuple[RouteNode, Labels, list[Alert]]]:
        """Each group's alerts, leaving out the resolved ones their group is done with."""
        assert self.route is not None
        members: dict[str, tuple[RouteNode, Labels, list[Alert]]] = {}
        for alert in alerts:
            for node in self.route.match(alert.labels):
                labels = Labels(node.group_labels(alert.labels))
                key = group_key(node, labels)
                if not self._member(key, alert):
                    continue
                members.setdefault(key, (node, labels, []))[2].append(alert)
        return members

    def _forget_refired(self, alerts: list[Alert]) -> None:
        """Drop done marks whose alert fired again or left the book: the map stays as small
        as the book's resolved alerts."""
        if not self.done:
            return
        resolved_at = {a.fingerprint: a.resolved_at for a in alerts if a.state is State.RESOLVED}
        self.done = {
            k: v for k, v in self.done.items() if k[1] in resolved_at and resolved_at[k[1]] == v
        }

    def _retire(self, members: Mapping[str, tuple[RouteNode, Labels, list[Alert]]]) -> None:
        """Resolved alerts a flush dealt with leave their group once nothing it queued is still
        waiting to go (Alertmanager deletes them after a successful notify); a group left with
        no member ends."""
        waiting: set[str] | None = None
        for key, group in self.groups.items():
            if not group.flushed_resolved:
                continue
            if waiting is None:
                try:
                    waiting = self.outbox.group_keys()
                except self.db.failures:
                    return  # storage away: nothing retires this tick (none is lost either)
            if key in waiting:
                continue
            for fp, resolved_at in group.flushed_resolved.items():
                self.done[(key, fp)] = resolved_at
            group.flushed_resolved = {}
        for key in list(self.groups):
            if not any(self._member(key, a) for a in members.get(key, (None, None, []))[2]):
                del self.groups[key]
                log.debug("group %s ended", key)

    def _member(self, key: str, alert: Alert) -> bool:
        if alert.state is not State.RESOLVED:
            return True
        mark = (key, alert.fingerprint)
        return mark not in self.done or self.done[mark] != alert.resolved_at

    def _flush(self, group: Group, alerts: list[Alert], now: float) -> int:
        # What this flush deals with, once its transaction commits: a flush rolled back (Fenced,
        # storage away) has dealt with nothing, and _retire must not drop its resolved alerts
        # (the resolve would never be decided again).
        dealt = {a.fingerprint: a.resolved_at for a in alerts if a.state is State.RESOLVED}
        # A route inside its mute_time_intervals (or outside its active ones) is quiet as a
        # whole, as Alertmanager's TimeMuteStage/TimeActiveStage: the same as all muted.
        quiet = group.route.time_muted(now) is not None
        audible = [] if quiet else [a for a in alerts if not self.mute(a, now)]
        if not audible:
            # Everything is muted: say nothing (withdraw a page still queued) and leave the log
            # alone, as Alertmanager does, so the end of a silence is not a brand-new page.
            with self.db.transaction() as conn:
                for channel in group.route.channels:
                    Outbox.cancel(conn, group.key, channel)
            group.flushed_resolved = dealt
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
        group.flushed_resolved = dealt
        return queued


def walk(route: RouteNode) -> Iterator[RouteNode]:
    yield route
    for child in route.children:
        yield from walk(child)


def same_route(a: RouteNode, b: RouteNode) -> bool:
    """Whether two nodes group, time and send alike (their subtrees aside)."""
    return replace(a, children=()) == replace(b, children=())
