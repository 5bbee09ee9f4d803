"""/api/v1/alerts and /api/v1/rules: read-only views of the alert book and the loaded rules."""

from __future__ import annotations

from typing import Any

from sentinel.api.http import Request, Response, finite, json_response
from sentinel.api.ports import ApiPorts
from sentinel.model import Alert, State, rfc3339


def current_alerts(sentinel: ApiPorts) -> list[Alert]:
    """Pending and firing alerts, firing first, then by alertname and fingerprint."""
    # list() of a dict view copies it in one step; the evaluator may be replacing entries.
    alerts = [a for a in list(sentinel.book.alerts.values()) if a.state is not State.RESOLVED]
    alerts.sort(
        key=lambda a: (a.state is not State.FIRING, a.labels.get("alertname", ""), a.fingerprint)
    )
    return alerts


def mutes(sentinel: ApiPorts, alert: Alert, now: float) -> tuple[list[str], list[str]]:
    """(silence ids, inhibiting fingerprints), decided as the dispatcher would decide now."""
    if sentinel.dispatcher is not None:
        mute = sentinel.dispatcher.mute(alert, now)
        return list(mute.silenced_by), list(mute.inhibited_by)
    return (
        sentinel.silencer.muted_by(alert.labels, now),
        sentinel.inhibitor.muted_by(alert.labels, now),
    )


def alert_to_api(alert: Alert, silenced_by: list[str], inhibited_by: list[str]) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": alert.state.value,
        "activeAt": rfc3339(alert.active_at),
        "startsAt": rfc3339(alert.fired_at),
        "value": finite(alert.value),
        "threshold": finite(alert.threshold),
        "fingerprint": alert.fingerprint,
        "silencedBy": silenced_by,
        "inhibitedBy": inhibited_by,
    }


def rule_to_api(rule: Any, alerts: list[Alert]) -> dict[str, Any]:
    # mode="json" renders SecretStr as "**********"; rules carry none today, but a future
    # rule kind with a credential must not leak it here.
    out: dict[str, Any] = rule.model_dump(by_alias=True, mode="json")
    mine = [a for a in alerts if a.rule == rule.name]
    firing = sum(1 for a in mine if a.state is State.FIRING)
    out["condition"] = rule.describe()
    out["state"] = "firing" if firing else "pending" if mine else "inactive"
    out["alerts"] = len(mine)
    return out


class AlertViews:
    def __init__(self, sentinel: ApiPorts) -> None:
        self.sentinel = sentinel

    def alerts(self, request: Request) -> Response:
        now = self.sentinel.clock.now()
        body = [
            alert_to_api(a, *mutes(self.sentinel, a, now)) for a in current_alerts(self.sentinel)
        ]
        return json_response(body)

    def rules(self, request: Request) -> Response:
        alerts = current_alerts(self.sentinel)
        return json_response([rule_to_api(r, alerts) for r in self.sentinel.config.rules])
