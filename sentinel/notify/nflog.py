"""The notification log: what each channel last received for each group."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from sentinel.db.sqlite import Database, Transaction


@dataclass(frozen=True, slots=True)
class LogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float
    memo: dict[str, str]


def _entry(row: sqlite3.Row | None) -> LogEntry | None:
    if row is None:
        return None
    return LogEntry(
        frozenset(json.loads(row["firing"])),
        frozenset(json.loads(row["resolved"])),
        row["sent_at"],
        json.loads(row["memo"]),
    )


class NotificationLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(
        self, group_key: str, channel: str, conn: sqlite3.Connection | Transaction | None = None
    ) -> LogEntry | None:
        sql = "SELECT * FROM nflog WHERE group_key = ? AND channel = ?"
        if conn is not None:
            return _entry(conn.execute(sql, (group_key, channel)).fetchone())
        rows = self.db.query(sql, (group_key, channel))
        return _entry(rows[0] if rows else None)

    @staticmethod
    def record(
        conn: sqlite3.Connection | Transaction,
        group_key: str,
        channel: str,
        firing: list[str],
        resolved: list[str],
        sent_at: float,
        memo: dict[str, str],
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO nflog (group_key, channel, firing, resolved, sent_at, memo)"
            " VALUES (?, ?, ?, ?, ?, ?)",
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
