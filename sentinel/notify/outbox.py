"""The outbox: decided notifications waiting to be delivered, retried until they are.

A decision is written here in the same transaction that read the notification log, so a
crash between deciding and sending loses nothing: the row is still here on restart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from sentinel.alerts.repo import alert_from_dict, alert_to_dict
from sentinel.db.engine import Engine, Row, Tx
from sentinel.model import Alert, Labels
from sentinel.notify.nflog import NotificationLog

log = logging.getLogger("sentinel.storage")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    group_key: str
    channel: str
    group_labels: Labels
    status: str
    alerts: tuple[Alert, ...]
    firing: list[str]
    resolved: list[str]
    reason: str
    created_at: float
    version: int
    attempts: int
    next_attempt_at: float
    last_error: str | None
    sending_since: float | None = None  # a send started and has no known outcome yet


def _row(r: Row) -> OutboxRow:
    return OutboxRow(
        id=r["id"],
        group_key=r["group_key"],
        channel=r["channel"],
        group_labels=Labels(json.loads(r["group_labels"])),
        status=r["status"],
        alerts=tuple(alert_from_dict(a) for a in json.loads(r["alerts"])),
        firing=json.loads(r["firing"]),
        resolved=json.loads(r["resolved"]),
        reason=r["reason"],
        created_at=r["created_at"],
        version=r["version"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
        sending_since=r["sending_since"],
    )


def _filter(channel: str | None, exclude: tuple[str, ...]) -> tuple[str, list[object]]:
    """SQL conditions (each starting with AND) and their parameters; `exclude` is bounded by a
    channel's in-flight cap, far below SQLite's limit on parameters."""
    where = ""
    params: list[object] = []
    if channel is not None:
        where += " AND channel = ?"
        params.append(channel)
    if exclude:
        where += f" AND group_key NOT IN ({', '.join('?' * len(exclude))})"
        params.extend(exclude)
    return where, params


class Outbox:
    """The outbox table on any engine."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    @staticmethod
    def put(
        conn: Tx,
        *,
        group_key: str,
        channel: str,
        group_labels: Labels,
        status: str,
        alerts: list[Alert],
        firing: list[str],
        resolved: list[str],
        reason: str,
        now: float,
    ) -> None:
        """Queue a notification, or rewrite the queued one for this group and channel.

        The version only moves when what would be said changes, so a sender that is already
        delivering an identical message is not made to send it twice. A rewritten row takes
        its place in the queue from the new decision (a backoff still running is kept): a
        group that keeps changing must not stay ahead of another group's older decision.
        """
        conn.execute(
            "INSERT INTO outbox (group_key, channel, group_labels, status, alerts, firing,"
            " resolved, reason, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (group_key, channel) DO UPDATE SET"
            "   group_labels = excluded.group_labels, status = excluded.status,"
            "   alerts = excluded.alerts, firing = excluded.firing,"
            "   resolved = excluded.resolved, reason = excluded.reason,"
            "   created_at = excluded.created_at,"
            "   next_attempt_at = CASE WHEN outbox.next_attempt_at > excluded.next_attempt_at"
            "     THEN outbox.next_attempt_at ELSE excluded.next_attempt_at END,"
            "   version = outbox.version + 1"
            " WHERE outbox.firing != excluded.firing OR outbox.resolved != excluded.resolved"
            "   OR outbox.status != excluded.status",
            (
                group_key,
                channel,
                json.dumps(dict(group_labels), sort_keys=True),
                status,
                json.dumps([alert_to_dict(a) for a in alerts]),
                json.dumps(sorted(firing)),
                json.dumps(sorted(resolved)),
                reason,
                now,
                now,
            ),
        )

    @staticmethod
    def cancel(conn: Tx, group_key: str, channel: str) -> int:
        """Withdraw a queued notification, unless a send of it may have reached the channel
        (under way, or cut off by a crash): that one is delivered and recorded first, so the
        next decision starts from what the channel was really told."""
        cur = conn.execute(
            "DELETE FROM outbox WHERE group_key = ? AND channel = ? AND sending_since IS NULL",
            (group_key, channel),
        )
        return cur.rowcount

    def due(
        self,
        now: float,
        limit: int | None = 100,
        *,
        channel: str | None = None,
        exclude: tuple[str, ...] = (),
    ) -> list[OutboxRow]:
        """Rows whose attempt is due, oldest-due first; optionally for one channel only and
        leaving out groups (those with a send in flight: one group's sends stay in order)."""
        where, params = _filter(channel, exclude)
        rows = self.db.query(
            f"SELECT * FROM outbox WHERE next_attempt_at <= ?{where}"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, *params, -1 if limit is None else limit),
        )
        return [_row(r) for r in rows]

    def get(self, group_key: str, channel: str) -> OutboxRow | None:
        rows = self.db.query(
            "SELECT * FROM outbox WHERE group_key = ? AND channel = ?", (group_key, channel)
        )
        return _row(rows[0]) if rows else None

    def claim(self, group_key: str, channel: str, now: float) -> OutboxRow | None:
        """Mark the row as being sent and return it as it stands now (a newer decision may
        have rewritten it since it was listed), or None if it is gone or no longer due.

        If the mark cannot be written (disk full, read-only file) the row is returned unmarked:
        a page must still go out when storage fails; only the crash guard is lost meanwhile.
        """
        select = "SELECT * FROM outbox WHERE group_key = ? AND channel = ? AND next_attempt_at <= ?"
        try:
            with self.db.transaction() as conn:
                r = conn.execute(select, (group_key, channel, now)).fetchone()
                if r is None:
                    return None
                conn.execute("UPDATE outbox SET sending_since = ? WHERE id = ?", (now, r["id"]))
        except self.db.failures as e:
            log.warning("outbox: cannot mark %s to %s as sending (%s)", group_key, channel, e)
            rows = self.db.query(select, (group_key, channel, now))
            return _row(rows[0]) if rows else None
        return replace(_row(r), sending_since=now)

    def all(self) -> list[OutboxRow]:
        return [_row(r) for r in self.db.query("SELECT * FROM outbox ORDER BY id")]

    def next_due(
        self, *, channel: str | None = None, exclude: tuple[str, ...] = ()
    ) -> float | None:
        where, params = _filter(channel, exclude)
        rows = self.db.query(
            f"SELECT MIN(next_attempt_at) AS t FROM outbox WHERE TRUE{where}", tuple(params)
        )
        return rows[0]["t"] if rows else None

    def group_keys(self) -> set[str]:
        """The groups with a notification still waiting to be delivered."""
        return {r["group_key"] for r in self.db.query("SELECT DISTINCT group_key FROM outbox")}

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) AS n FROM outbox")[0]["n"])

    def delivered(self, row: OutboxRow, memo: dict[str, Any], now: float) -> None:
        """Record the delivery in the log and drop the row, unless a newer decision replaced it
        while we were sending (then the newer one is still to go)."""
        with self.db.transaction() as conn:
            NotificationLog.record(
                conn,
                row.group_key,
                row.channel,
                row.firing,
                row.resolved,
                # The decision's time, as Alertmanager logs its flush time: measuring the
                # repeat interval from delivery would push each reminder a flush later.
                min(now, row.created_at),
                {k: str(v) for k, v in memo.items()},
            )
            conn.execute("DELETE FROM outbox WHERE id = ? AND version = ?", (row.id, row.version))
            _sent(conn, row)

    def retry_later(self, row: OutboxRow, error: str, next_attempt_at: float) -> None:
        with self.db.transaction() as conn:
            # A newer decision written while this one was in flight goes out at once,
            # without inheriting the stale attempt's backoff.
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE id = ? AND version = ?",
                (next_attempt_at, error, row.id, row.version),
            )
            _sent(conn, row)

    def give_up(self, row: OutboxRow, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM outbox WHERE id = ? AND version = ?", (row.id, row.version))
            _sent(conn, row)


def _sent(conn: Tx, row: OutboxRow) -> None:
    """The send's outcome is known: a newer version left in the row is withdrawable again."""
    conn.execute("UPDATE outbox SET sending_since = NULL WHERE id = ?", (row.id,))
