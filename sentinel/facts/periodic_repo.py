"""Where the periodic tasks' last-seen times survive a restart: `PeriodicRepo` is what the app
needs, `SqlPeriodicRepo` the periodic_tasks table on any engine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sentinel.db.engine import Engine
from sentinel.facts.periodic import Remembered


class PeriodicRepo(Protocol):
    def load(self) -> dict[str, Remembered]: ...

    def save(self, rows: Iterable[tuple[str, float, bool, float]]) -> None:
        """(task, seen_at, by_sent, checked_at) rows, replacing what was kept of each task."""
        ...


class SqlPeriodicRepo:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def load(self) -> dict[str, Remembered]:
        return {
            r["task"]: Remembered(r["seen_at"], bool(r["by_sent"]), r["checked_at"])
            for r in self.db.query("SELECT task, seen_at, by_sent, checked_at FROM periodic_tasks")
        }

    def save(self, rows: Iterable[tuple[str, float, bool, float]]) -> None:
        packed = [(task, seen, int(by_sent), checked) for task, seen, by_sent, checked in rows]
        if not packed:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO periodic_tasks (task, seen_at, by_sent, checked_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (task) DO UPDATE SET"
                " seen_at = excluded.seen_at, by_sent = excluded.by_sent,"
                " checked_at = excluded.checked_at",
                packed,
            )
