"""Silences as Alertmanager's API v2 knows them, on any engine: the silencer's `SilenceRepo`."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sentinel.db.engine import Engine
from sentinel.notify.matchers import Matcher, MatcherError
from sentinel.notify.silence import Silence

log = logging.getLogger("sentinel.silence")

_ALL = "SELECT * FROM silences ORDER BY starts_at"


def read_silences(path: str | Path) -> list[Silence]:
    """The silences in a state file, opened read-only (`sentinel replay`): nothing is written
    to it, not even a migration. Raises sqlite3.Error when it cannot be read."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return _readable(conn.execute(_ALL))
    finally:
        conn.close()


def _readable(rows: Iterable[Any]) -> list[Silence]:
    out = []
    for r in rows:
        try:
            out.append(_silence(r))
        except MatcherError as e:
            # Before 0.2 silences read regexes as Python's re, which takes lookarounds and
            # backreferences RE2 refuses: such a silence is kept in the table (gc removes it
            # once expired) but cannot mute, and says so once at start.
            log.warning("silence %s cannot be read and does not mute: %s", r["id"], e)
    return out


class SqlSilenceRepo:
    def __init__(self, db: Engine) -> None:
        self.db = db

    def all(self) -> list[Silence]:
        return _readable(self.db.query(_ALL))

    def save(self, s: Silence) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO silences"
                " (id, matchers, starts_at, ends_at, created_by, comment, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " matchers = excluded.matchers, starts_at = excluded.starts_at,"
                " ends_at = excluded.ends_at, created_by = excluded.created_by,"
                " comment = excluded.comment, updated_at = excluded.updated_at",
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
