"""Where the alert book keeps the current state of every pending, firing and recently resolved
alert: `AlertRepo` is what the book needs, `SqlAlertRepo` the alerts table on any engine."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from sentinel.db.engine import Engine
from sentinel.model import Alert, Labels, State


def alert_to_dict(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "state": a.state.value,
        "active_at": a.active_at,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
        "value": a.value,
        "threshold": a.threshold,
        "updated_at": a.updated_at,
    }


def alert_from_dict(d: dict[str, Any]) -> Alert:
    return Alert(
        rule=d["rule"],
        labels=Labels(d["labels"]),
        annotations=d["annotations"],
        state=State(d["state"]),
        active_at=d["active_at"],
        value=d["value"],
        threshold=d["threshold"],
        fired_at=d["fired_at"],
        resolved_at=d["resolved_at"],
        updated_at=d.get("updated_at", 0.0),
    )


class AlertRepo(Protocol):
    def load(self) -> dict[str, Alert]: ...

    def save(self, changed: Iterable[Alert], removed: Iterable[str]) -> None: ...


class SqlAlertRepo:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def load(self) -> dict[str, Alert]:
        alerts = {}
        for row in self.db.query("SELECT * FROM alerts"):
            alert = alert_from_dict(
                {
                    **dict(row),
                    "labels": json.loads(row["labels"]),
                    "annotations": json.loads(row["annotations"]),
                }
            )
            alerts[alert.fingerprint] = alert
        return alerts

    def replace(self, alerts: Iterable[Alert]) -> None:
        """The table becomes exactly these alerts (a new leader's book)."""
        current = {row["fingerprint"] for row in self.db.query("SELECT fingerprint FROM alerts")}
        alerts = list(alerts)
        keep = {a.fingerprint for a in alerts}
        self.save(alerts, current - keep)

    def save(self, changed: Iterable[Alert], removed: Iterable[str]) -> None:
        rows = [
            (
                a.fingerprint,
                a.rule,
                json.dumps(dict(a.labels), sort_keys=True),
                json.dumps(dict(a.annotations), sort_keys=True),
                a.state.value,
                a.active_at,
                a.fired_at,
                a.resolved_at,
                a.value,
                a.threshold,
                a.updated_at,
            )
            for a in changed
        ]
        gone = [(fp,) for fp in removed]
        if not rows and not gone:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO alerts (fingerprint, rule, labels, annotations, state,"
                " active_at, fired_at, resolved_at, value, threshold, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (fingerprint) DO UPDATE SET rule = excluded.rule,"
                " labels = excluded.labels, annotations = excluded.annotations,"
                " state = excluded.state, active_at = excluded.active_at,"
                " fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,"
                " value = excluded.value, threshold = excluded.threshold,"
                " updated_at = excluded.updated_at",
                rows,
            )
            conn.executemany("DELETE FROM alerts WHERE fingerprint = ?", gone)
