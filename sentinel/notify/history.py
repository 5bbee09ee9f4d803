"""The notification history: every notification sent or attempted (channel, group, firing or
resolved, when, which attempt, the outcome and the channel's error), for the status page and
`GET /api/v1/notifications`.

Unlike the notification log (what each channel last received, one row per group and channel,
which decides what to send), this is an audit trail: one row per attempt, read by people,
never by the pipeline. It is bounded by age and by rows, enforced by the maintenance job.
One SQL implementation over either engine (sentinel/db/engine.py); it is not fenced (no trigger
in migrations/007): it logs attempts that happened, an old leader's included.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.db.engine import Engine, Row
from sentinel.model import Alert, Labels, rfc3339

log = logging.getLogger("sentinel.storage")

OUTCOMES = ("success", "retry", "failed", "dropped")
# A group of thousands of alerts would make one row as large as the rest together: the row
# names the first ones and counts the others.
MAX_ALERTS_PER_ROW = 50
MAX_ERROR = 2000  # characters of a channel's error kept


@dataclass(frozen=True, slots=True)
class AlertRef:
    fingerprint: str
    alertname: str
    state: str


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float
    channel: str
    group_key: str
    group_labels: Labels
    status: str  # firing | resolved
    alerts: tuple[AlertRef, ...]
    attempt: int  # 1 for the first try of a decision
    outcome: str  # success | retry | failed | dropped
    error: str | None = None
    more_alerts: int = 0  # beyond MAX_ALERTS_PER_ROW, not listed
    id: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": rfc3339(self.at),
            "channel": self.channel,
            "groupKey": self.group_key,
            "groupLabels": dict(self.group_labels),
            "status": self.status,
            "alerts": [
                {"fingerprint": a.fingerprint, "alertname": a.alertname, "state": a.state}
                for a in self.alerts
            ],
            "moreAlerts": self.more_alerts,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "error": self.error,
        }


def refs(alerts: Sequence[Alert]) -> tuple[tuple[AlertRef, ...], int]:
    listed = tuple(
        AlertRef(a.fingerprint, a.labels.get("alertname", ""), a.state.value)
        for a in alerts[:MAX_ALERTS_PER_ROW]
    )
    return listed, max(0, len(alerts) - MAX_ALERTS_PER_ROW)


class NotificationHistory(Protocol):
    def record(self, attempt: Attempt) -> None: ...

    def list(
        self,
        *,
        channel: str | None = None,
        alert: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> builtins.list[Attempt]: ...

    def channels(self) -> builtins.list[str]: ...

    def prune(self, older_than: float, max_rows: int) -> int: ...


def _attempt(r: Row) -> Attempt:
    alerts = json.loads(r["alerts"])
    listed = alerts.get("listed", [])
    return Attempt(
        id=r["id"],
        at=r["at"],
        channel=r["channel"],
        group_key=r["group_key"],
        group_labels=Labels(json.loads(r["group_labels"])),
        status=r["status"],
        alerts=tuple(AlertRef(a["fingerprint"], a["alertname"], a["state"]) for a in listed),
        more_alerts=int(alerts.get("more", 0)),
        attempt=r["attempt"],
        outcome=r["outcome"],
        error=r["error"],
    )


# An attempt naming `alert` (an alertname or a fingerprint) among its listed alerts: JSON is
# read by each engine's own functions (the column is TEXT on both).
_NAMES_ALERT = {
    "sqlite": "EXISTS (SELECT 1 FROM json_each(alerts, '$.listed') AS a"
    " WHERE json_extract(a.value, '$.alertname') = ?"
    " OR json_extract(a.value, '$.fingerprint') = ?)",
    "postgresql": "EXISTS (SELECT 1 FROM json_array_elements(alerts::json -> 'listed') AS a"
    " WHERE a ->> 'alertname' = ? OR a ->> 'fingerprint' = ?)",
}


class SqlNotificationHistory:
    """The notification_history table on any engine."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def record(self, attempt: Attempt) -> None:
        """Never raises for storage: losing a line of history must not cost the page."""
        alerts = {
            "listed": [
                {"fingerprint": a.fingerprint, "alertname": a.alertname, "state": a.state}
                for a in attempt.alerts
            ],
            "more": attempt.more_alerts,
        }
        try:
            self.db.query(
                "INSERT INTO notification_history (at, channel, group_key, group_labels, status,"
                " alerts, attempt, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.at,
                    attempt.channel,
                    attempt.group_key,
                    json.dumps(dict(attempt.group_labels), sort_keys=True),
                    attempt.status,
                    json.dumps(alerts),
                    attempt.attempt,
                    attempt.outcome,
                    None if attempt.error is None else attempt.error[:MAX_ERROR],
                ),
            )
        except self.db.failures as e:
            log.warning("notification history: cannot record an attempt (%s)", e)

    def list(
        self,
        *,
        channel: str | None = None,
        alert: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> builtins.list[Attempt]:  # `list` is this class's method
        """Newest first. `alert` is an alertname or a fingerprint; `before` an id (paging)."""
        where: list[str] = ["1 = 1"]
        params: list[str | int] = []
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if alert:
            where.append(_NAMES_ALERT[self.db.dialect])
            params += [alert, alert]
        if before is not None:
            where.append("id < ?")
            params.append(before)
        rows = self.db.query(
            f"SELECT * FROM notification_history WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_attempt(r) for r in rows]

    def channels(self) -> builtins.list[str]:
        rows = self.db.query("SELECT DISTINCT channel FROM notification_history ORDER BY channel")
        return [r["channel"] for r in rows]

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) AS n FROM notification_history")[0]["n"])

    def prune(self, older_than: float, max_rows: int) -> int:
        """Delete rows older than `older_than`, then all but the newest `max_rows`."""
        with self.db.transaction() as conn:
            gone = conn.execute(
                "DELETE FROM notification_history WHERE at < ?", (older_than,)
            ).rowcount
            gone += conn.execute(
                "DELETE FROM notification_history WHERE id <= (SELECT id FROM"
                " notification_history ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (max_rows,),
            ).rowcount
        return int(gone)
