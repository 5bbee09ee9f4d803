"""The notification log: what each channel last received for each group."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from sentinel.db.engine import Engine, Row, Tx


@dataclass(frozen=True, slots=True)
class LogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float
    memo: dict[str, str]


def _entry(row: Row | None) -> LogEntry | None:
    if row is None:
        return None
    return LogEntry(
        frozenset(json.loads(row["firing"])),
        frozenset(json.loads(row["resolved"])),
        row["sent_at"],
        json.loads(row["memo"]),
    )


class NflogRepo(Protocol):
    """What the pipeline (decide) and the sender (record a delivery) need of the log."""

    def get(self, group_key: str, channel: str, conn: Tx | None = None) -> LogEntry | None: ...

    def prune(self, keep_groups: set[str], older_than: float) -> int: ...


class NotificationLog:
    """The nflog table on any engine."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def get(self, group_key: str, channel: str, conn: Tx | None = None) -> LogEntry | None:
        sql = "SELECT * FROM nflog WHERE group_key = ? AND channel = ?"
        if conn is not None:
            return _entry(conn.execute(sql, (group_key, channel)).fetchone())
        rows = self.db.query(sql, (group_key, channel))
        return _entry(rows[0] if rows else None)

    @staticmethod
    def record(
        conn: Tx,
        group_key: str,
        channel: str,
        firing: list[str],
        resolved: list[str],
        sent_at: float,
        memo: dict[str, str],
    ) -> None:
        conn.execute(
            "INSERT INTO nflog (group_key, channel, firing, resolved, sent_at, memo)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_key, channel) DO UPDATE SET"
            " firing = excluded.firing, resolved = excluded.resolved,"
            " sent_at = excluded.sent_at, memo = excluded.memo",
            (
                group_key,
                channel,
                json.dumps(sorted(firing)),
                json.dumps(sorted(resolved)),
                sent_at,
                json.dumps(memo, sort_keys=True),
            ),
        )

    def prune(self, keep_groups: set[str], older_than: float) -> int:
        """Forget entries of groups that no longer exist and were last sent long ago."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT group_key, channel FROM nflog WHERE sent_at < ?", (older_than,)
            ).fetchall()
            gone = [
                (r["group_key"], r["channel"]) for r in rows if r["group_key"] not in keep_groups
            ]
            conn.executemany("DELETE FROM nflog WHERE group_key = ? AND channel = ?", gone)
        return len(gone)
