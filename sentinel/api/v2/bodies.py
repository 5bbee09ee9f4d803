"""The v2 alert and alert-group bodies (`gettableAlert`, `alertGroup`), from sentinel's alerts
and the routing tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentinel.links import generator_url
from sentinel.model import Alert, State, rfc3339
from sentinel.notify.pipeline import Mute
from sentinel.notify.route import RouteNode


@dataclass(frozen=True, slots=True)
class AlertView:
    """One firing alert as Alertmanager would hold it at `now`."""

    alert: Alert
    nodes: tuple[RouteNode, ...]  # the route nodes that take it
    receivers: tuple[str, ...]
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]
    muted_by: tuple[str, ...]  # time intervals that keep its routes quiet now
    now: float

    @property
    def state(self) -> str:
        suppressed = self.silenced_by or self.inhibited_by or self.muted_by
        return "suppressed" if suppressed else "active"


def node_receivers(node: RouteNode) -> tuple[str, ...]:
    """A node's receiver names: its `receiver:`, else each of its channels."""
    return (node.receiver,) if node.receiver is not None else node.channels


def view(alert: Alert, route: RouteNode | None, mute: Mute, now: float) -> AlertView | None:
    """The alert as Alertmanager would list it, or None for one it would not (not firing)."""
    if alert.state is not State.FIRING:
        return None
    nodes = tuple(route.match(alert.labels)) if route is not None else ()
    receivers = tuple(dict.fromkeys(r for n in nodes for r in node_receivers(n)))
    muted = tuple(dict.fromkeys(m for n in nodes if (m := n.time_muted(now)) is not None))
    # Muted by time only when every route that takes it is (another may still send it).
    if len(muted) < len(nodes) or not nodes:
        muted = ()
    return AlertView(alert, nodes, receivers, mute.silenced_by, mute.inhibited_by, muted, now)


def alert_body(v: AlertView, base_url: str, evaluation_interval: float) -> dict[str, Any]:
    a = v.alert
    return {
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(a.fired_at if a.fired_at is not None else a.active_at),
        # What Prometheus would send: the alert holds while evaluations go on confirming it.
        "endsAt": rfc3339(v.now + 4 * evaluation_interval),
        "updatedAt": rfc3339(a.updated_at or a.active_at),
        "fingerprint": a.fingerprint,
        "receivers": [{"name": r} for r in v.receivers],
        "status": {
            "state": v.state,
            "silencedBy": list(v.silenced_by),
            "inhibitedBy": list(v.inhibited_by),
            "mutedBy": list(v.muted_by),
        },
        "generatorURL": generator_url(base_url, a.fingerprint),
    }


def group_bodies(
    views: list[AlertView], base_url: str, evaluation_interval: float
) -> list[dict[str, Any]]:
    """One group per (route node, group labels, receiver), as the dispatcher groups them."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...], str], dict[str, Any]] = {}
    for v in views:
        body = alert_body(v, base_url, evaluation_interval)
        for node in v.nodes:
            labels = node.group_labels(v.alert.labels)
            for receiver in node_receivers(node):
                key = (node.key, tuple(sorted(labels.items())), receiver)
                group = groups.setdefault(
                    key,
                    {
                        "labels": labels,
                        "receiver": {"name": receiver},
                        "routeLabels": {},
                        "alerts": [],
                    },
                )
                group["alerts"].append(body)
    return list(groups.values())
