"""Housekeeping that keeps the database bounded, scheduled like Alertmanager's nflog and
silences `Maintenance(interval, ...)`: every retention is enforced by something that runs.

- notification log: an entry is kept while its group exists, and otherwise for the longest
  repeat_interval + group_interval of any route (at least a day). Past that it cannot change a
  decision: a group that comes back after its repeat_interval is paged again anyway.
- silences: expired ones stay listed for SILENCE_RETENTION (Alertmanager's default 120h), then go.
- notification history: rows older than storage.notification_history.keep, then all but the
  newest max_rows.
- alerts: resolved alerts are dropped by the alert book after its resolved_retention; the
  outbox empties itself as rows are delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sentinel.notify.history import NotificationHistory
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.silence import Silencer

log = logging.getLogger("sentinel.storage")

INTERVAL = 900.0  # Alertmanager's --data.maintenance-interval default (15m)
NFLOG_MIN_RETENTION = 86400.0
SILENCE_RETENTION = 5 * 86400.0


def nflog_retention(route: Any | None) -> float:
    """How long an entry of a group that no longer exists is kept: long enough that dropping
    it changes no decision (after repeat_interval the group would be paged again anyway)."""
    longest = 0.0
    stack = [route] if route is not None else []
    while stack:
        node = stack.pop()
        longest = max(longest, node.repeat_interval + node.group_interval)
        stack.extend(node.children)
    return max(NFLOG_MIN_RETENTION, longest)


@dataclass(frozen=True, slots=True)
class Pruned:
    nflog: int
    silences: int
    history: int = 0


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    keep: float  # seconds
    max_rows: int


class Maintenance:
    def __init__(
        self,
        nflog: NotificationLog,
        silencer: Silencer,
        retention: Callable[[], float],
        live_groups: Callable[[], Iterable[str]],
        silence_retention: float = SILENCE_RETENTION,
        history: NotificationHistory | None = None,
        history_bounds: Callable[[], HistoryBounds] | None = None,
    ) -> None:
        self.nflog = nflog
        self.silencer = silencer
        self.retention = retention  # read at each run: a reload may change the routes
        self.live_groups = live_groups
        self.silence_retention = silence_retention
        self.history = history
        self.history_bounds = history_bounds or (lambda: HistoryBounds(30 * 86400.0, 20_000))
        self.runs = 0
        self.pruned_total = Pruned(0, 0)

    def run(self, now: float) -> Pruned:
        entries = self.nflog.prune(set(self.live_groups()), now - self.retention())
        silences = self.silencer.gc(now, self.silence_retention)
        history = 0
        if self.history is not None:
            bounds = self.history_bounds()
            history = self.history.prune(now - bounds.keep, bounds.max_rows)
        self.runs += 1
        total = self.pruned_total
        self.pruned_total = Pruned(
            total.nflog + entries, total.silences + silences, total.history + history
        )
        if entries or silences or history:
            log.info(
                "maintenance: %d notification log entr%s, %d expired silence(s) and %d"
                " notification history row(s) removed",
                entries,
                "y" if entries == 1 else "ies",
                silences,
                history,
            )
        return Pruned(entries, silences, history)
