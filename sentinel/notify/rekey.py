"""Group keys from before 0.2, moved to today's at start, so an upgrade does not re-page.

A group's key starts with its route node's key, and 0.2 spells node keys as Alertmanager does:
a `match_re` value anchored (`queue=~"^(?:billing.*)$"`), `match` and `match_re` sorted
together, values escaped. The notification log and the outbox are keyed by group, so without
this a group under such a node would look new (and page again) after the upgrade. A file
already moved has nothing under the old keys, so this costs two indexed queries per changed
node at start and nothing after.
"""

from __future__ import annotations

import logging

from sentinel.db.engine import Engine
from sentinel.notify.route import RouteNode

log = logging.getLogger("sentinel.notify")


def rekey(db: Engine, route: RouteNode | None) -> int:
    """Move the rows of groups under a node's legacy key to its key; returns how many.
    SQLite only: no PostgreSQL database predates 0.2's keys (and `UPDATE OR IGNORE` is SQLite's,
    an update there a fenced write)."""
    if db.dialect != "sqlite":
        return 0
    moves = [(n.legacy_key, n.key) for n in _walk(route) if n.legacy_key not in (None, n.key)]
    if not moves:
        return 0
    moved = 0
    with db.transaction() as conn:
        for old, new in moves:
            for table in ("nflog", "outbox"):
                # OR IGNORE: a row already under the new key (written since) is the newer one.
                moved += conn.execute(
                    f"UPDATE OR IGNORE {table} SET group_key = ? || substr(group_key, ?)"
                    " WHERE substr(group_key, 1, ?) = ?",
                    (new, len(old) + 1, len(old) + 1, f"{old}:"),
                ).rowcount
    if moved:
        log.info("moved %d notification log/outbox row(s) to 0.2's group keys", moved)
    return moved


def _walk(node: RouteNode | None) -> list[RouteNode]:
    out, stack = [], [node] if node is not None else []
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(n.children)
    return out
