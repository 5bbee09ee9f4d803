"""Silences as Alertmanager's API v2 knows them, kept in SQLite: the silencer's `SilenceRepo`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sentinel.db.sqlite import Database
from sentinel.notify.silence import Matcher, Silence

_ALL = "SELECT * FROM silences ORDER BY starts_at"


def _silence(r: Any) -> Silence:
    return Silence(
        id=r["id"],
        matchers=tuple(Matcher.from_api(m) for m in json.loads(r["matchers"])),
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        created_by=r["created_by"],
        comment=r["comment"],
        updated_at=r["updated_at"],
    )


def read_silences(path: str | Path) -> list[Silence]:
    """The silences in a state file, opened read-only (`sentinel replay`): nothing is written
    to it, not even a migration. Raises sqlite3.Error when it cannot be read."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return [_silence(r) for r in conn.execute(_ALL)]
    finally:
        conn.close()


class SqliteSilenceRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[Silence]:
        return [_silence(r) for r in self.db.query(_ALL)]

    def save(self, s: Silence) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO silences"
                " (id, matchers, starts_at, ends_at, created_by, comment, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    s.id,
                    json.dumps([m.to_api() for m in s.matchers]),
                    s.starts_at,
                    s.ends_at,
                    s.created_by,
                    s.comment,
                    s.updated_at,
                ),
            )

    def delete_expired(self, before: float) -> int:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM silences WHERE ends_at < ?", (before,)).rowcount
