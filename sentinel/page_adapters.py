"""The status page's ports (sentinel/api/page/ports.py) over the running components: built by
the composition root, each adapter reads what is current (the config and route are swapped on
reload) and copies out under the owner's lock (the evaluator owns the fact store)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sentinel.alerts.values import ValueHistory
from sentinel.api.page.ports import (
    GroupRef,
    Muting,
    PagePorts,
    PageSettings,
    QueueView,
    WorkerView,
)
from sentinel.clock import Clock
from sentinel.config import Config
from sentinel.facts.store import FactStore
from sentinel.model import Alert, Labels, State
from sentinel.notify.history import NotificationHistory
from sentinel.notify.route import RouteNode
from sentinel.notify.silence import Silencer


class Settings:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config

    def settings(self) -> PageSettings:
        config = self._config()
        return PageSettings(
            rules=config.rules,
            server=config.server,
            channels=tuple(config.channels),
            window=config.limits.history_points * config.evaluation.interval,
        )


class Alerts:
    def __init__(
        self,
        alerts: Callable[[], Mapping[str, Alert]],
        muted: Callable[[Alert, float], tuple[list[str], list[str]]],
    ) -> None:
        self._alerts, self._muted = alerts, muted

    def alerts(self) -> list[Alert]:
        # list() of a dict view copies it in one step; the evaluator may be replacing entries.
        current = [a for a in list(self._alerts().values()) if a.state is not State.RESOLVED]
        current.sort(
            key=lambda a: (
                a.state is not State.FIRING,
                a.labels.get("alertname", ""),
                a.fingerprint,
            )
        )
        return current

    def muting(self, alert: Alert, now: float) -> Muting:
        return Muting(*self._muted(alert, now))


class Cluster:
    def __init__(self, store: FactStore) -> None:
        self.store = store

    def workers(self, now: float) -> list[WorkerView]:
        with self.store.lock:
            return [
                WorkerView(
                    w.hostname,
                    w.alive(now),
                    w.last_seen(),
                    w.active,
                    w.processed,
                    tuple(w.queues),
                    w.sw_ver,
                )
                for w in self.store.workers.values()
            ]

    def queues(self) -> list[QueueView]:
        with self.store.lock:
            return [
                QueueView(q.name, q.depth, q.consumers, q.error) for q in self.store.queues.values()
            ]

    def last_event_at(self) -> float | None:
        return self.store.last_event_at


class Routing:
    def __init__(self, route: Callable[[], RouteNode | None]) -> None:
        self._route = route

    def groups(self, labels: Mapping[str, str]) -> list[GroupRef]:
        route = self._route()
        if route is None:
            return []
        return [
            GroupRef(node.key, Labels(node.group_labels(labels)), node.channels)
            for node in route.match(labels)
        ]


def page_ports(
    *,
    clock: Clock,
    config: Callable[[], Config],
    alerts: Callable[[], Mapping[str, Alert]],
    muted: Callable[[Alert, float], tuple[list[str], list[str]]],
    store: FactStore,
    route: Callable[[], RouteNode | None],
    values: ValueHistory,
    depths: ValueHistory,
    silencer: Silencer,
    notifications: NotificationHistory | None,
) -> PagePorts:
    return PagePorts(
        clock=clock,
        settings=Settings(config),
        alerts=Alerts(alerts, muted),
        cluster=Cluster(store),
        routing=Routing(route),
        values=values,
        depths=depths,
        silences=silencer,
        notifications=notifications,
    )
