"""/api/v1/alerts and /api/v1/rules: read-only views of the alert book and the loaded rules."""

from __future__ import annotations

from typing import Any

from sentinel.api.http import Request, Response, finite, json_response
from sentinel.api.ports import AlertsPort, RulesPort
from sentinel.clock import Clock
from sentinel.model import Alert, State, rfc3339


def current_alerts(port: AlertsPort) -> list[Alert]:
    """Pending and firing alerts, firing first, then by alertname and fingerprint."""
    alerts = [a for a in port.alerts() if a.state is not State.RESOLVED]
    alerts.sort(
        key=lambda a: (a.state is not State.FIRING, a.labels.get("alertname", ""), a.fingerprint)
    )
    return alerts


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
    def __init__(self, alerts: AlertsPort, rules: RulesPort, clock: Clock) -> None:
        self.port = alerts
        self.rules_port = rules
        self.clock = clock

    def alerts(self, request: Request) -> Response:
        now = self.clock.now()
        body = []
        for alert in current_alerts(self.port):
            mute = self.port.mute(alert, now)
            body.append(alert_to_api(alert, list(mute.silenced_by), list(mute.inhibited_by)))
        return json_response(body)

    def rules(self, request: Request) -> Response:
        alerts = current_alerts(self.port)
        return json_response([rule_to_api(r, alerts) for r in self.rules_port.rules()])
