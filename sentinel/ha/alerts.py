"""The alert book's storage under a lease: a follower keeps its book in memory (warm, from the
same events the leader sees) and writes nothing; the leader writes, and after a takeover, or
after the database failed a write, writes the whole book once, since the rows hold another
replica's view or miss changes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from sentinel.alerts.repo import SqlAlertRepo
from sentinel.db.engine import Fenced
from sentinel.model import Alert

log = logging.getLogger("sentinel.ha")


class LeaderAlertRepo:
    """An AlertRepo (alerts/repo.py) that writes only under the lease."""

    def __init__(
        self,
        repo: SqlAlertRepo,
        epoch: Callable[[], int | None],
        book: Callable[[], Mapping[str, Alert]],
    ) -> None:
        self.repo = repo
        self.epoch = epoch
        self.book = book  # the whole current state, written after a takeover
        self._synced: int | None = None  # the epoch under which the table matches the book

    def load(self) -> dict[str, Alert]:
        return self.repo.load()

    def save(self, changed: Iterable[Alert], removed: Iterable[str]) -> None:
        epoch = self.epoch()
        if epoch is None:
            self._synced = None
            return
        failures: tuple[type[Exception], ...] = (Fenced, *self.repo.db.failures)
        try:
            if self._synced == epoch:
                self.repo.save(changed, removed)
            else:
                self.repo.replace(self.book().values())
                self._synced = epoch
        except failures as e:
            # The book in memory is the truth meanwhile; the next write under a lease is whole.
            self._synced = None
            log.warning("ha: alert state not written (%s); kept in memory", e)
