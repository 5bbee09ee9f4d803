"""What a follower does and does not do, on SQLite and a fake clock (the lease itself, on a real
PostgreSQL, is tests/integration/test_ha_lease.py): it keeps its groups' timers warm and decides
nothing; once it leads, a flush that fell due meanwhile is made at the next tick, not a
group_interval later; a sender that may not send claims nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.alerts.repo import SqlAlertRepo
from sentinel.clock import FakeClock
from sentinel.db.engine import Fenced
from sentinel.db.sqlite import Database
from sentinel.ha.alerts import LeaderAlertRepo
from tests.helpers import T0
from tests.unit.notify.harness import GROUP_INTERVAL, GROUP_WAIT, Harness, firing, resolve


class Leading:
    def __init__(self) -> None:
        self.on = False

    def __call__(self) -> bool:
        return self.on


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[tuple[Harness, Leading]]:
    h = Harness(tmp_path / "sentinel.db", FakeClock(T0))
    leading = Leading()
    h.dispatcher.may_decide = leading
    h.sender.may_send = leading
    yield h, leading
    h.close()


def test_a_follower_decides_nothing_and_owes_the_flush(follower: tuple[Harness, Leading]) -> None:
    h, leading = follower
    alert = firing()
    assert h.at(0, [alert]) == []
    assert h.at(GROUP_WAIT, [alert]) == [] and h.rows() == []
    (group,) = h.dispatcher.groups.values()
    assert group.owed and group.next_flush == T0 + GROUP_WAIT + GROUP_INTERVAL
    leading.on = True
    sent = h.at(GROUP_WAIT + 1, [alert])  # taken over: at once, not at the next interval
    assert [n.status for n in sent] == ["firing"]
    assert not group.owed
    assert h.at(GROUP_WAIT + 2, [alert]) == []  # and once


def test_a_sender_that_may_not_send_claims_nothing(follower: tuple[Harness, Leading]) -> None:
    h, leading = follower
    h.dispatcher.may_decide = lambda: True  # decided by the old leader: in the shared outbox
    alert = firing()
    h.at(0, [alert], drain=False)
    h.at(GROUP_WAIT, [alert], drain=False)
    assert h.sender.drain() == 0
    assert h.rows()[0].sending_since is None and h.new() == []  # not even claimed
    leading.on = True
    assert h.sender.drain() == 1


def test_the_leaders_alert_repo_writes_whole_after_a_takeover(tmp_path: Path) -> None:
    db = Database(tmp_path / "sentinel.db")
    inner = SqlAlertRepo(db)
    stale = firing("Gone")
    inner.save([stale], [])  # the old leader's view
    epoch: list[int | None] = [None]
    a, b = firing("A"), firing("B")
    book = {a.fingerprint: a, b.fingerprint: b}
    repo = LeaderAlertRepo(inner, lambda: epoch[0], lambda: book)
    repo.save([a], [])
    assert set(inner.load()) == {stale.fingerprint}  # a follower writes nothing
    epoch[0] = 2
    repo.save([a], [])
    assert set(inner.load()) == set(book)  # the whole book, the stale row gone
    repo.save([], [a.fingerprint])
    assert set(inner.load()) == {b.fingerprint}  # then changes only
    db.close()


def test_a_resolve_the_fence_refused_is_decided_again(
    follower: tuple[Harness, Leading], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush rolled back (the lease ran out under it: Fenced, or the database failed) has
    dealt with nothing: its resolved alerts stay in the group, and the resolve goes out once
    the leader may write again (test_the_database_unreachable_mid_incident's lost resolve)."""
    h, leading = follower
    leading.on = True
    alert = firing()
    h.at(0, [alert])
    assert [n.status for n in h.at(GROUP_WAIT, [alert])] == ["firing"]
    gone = resolve(alert, GROUP_WAIT + 5)
    real = h.db.transaction
    refused: list[bool] = []

    def fenced_once(*args: object, **kwargs: object) -> object:
        if not refused:
            refused.append(True)
            raise Fenced("write to outbox fenced: epoch none is not the lease's")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(h.db, "transaction", fenced_once)
    assert h.at(GROUP_WAIT + GROUP_INTERVAL, [gone]) == [] and refused
    (group,) = h.dispatcher.groups.values()
    assert group.owed
    sent = h.at(GROUP_WAIT + GROUP_INTERVAL + 1, [gone])
    assert [n.status for n in sent] == ["resolved"]
    assert h.at(GROUP_WAIT + 2 * GROUP_INTERVAL + 1, [gone]) == []  # once
