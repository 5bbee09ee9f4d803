"""The leader lease and its fencing on a real PostgreSQL (a schema of each test's own).

Time passing on the database's clock is simulated by moving the lease's expiry back, and on
a replica's monotonic clock by a fake one: nothing here waits for a lease to run out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sentinel.config.loader import ConfigError
from sentinel.db.engine import Fenced
from sentinel.db.postgres import PostgresDatabase
from sentinel.ha.alone import leave_ha
from sentinel.ha.lease import Lease
from sentinel.model import Labels
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.outbox import Outbox
from tests.helpers import T0

pytestmark = pytest.mark.integration


class Mono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(postgres_url: str) -> Iterator[PostgresDatabase]:
    engine = PostgresDatabase(postgres_url)
    yield engine
    engine.close()


@pytest.fixture
def other(postgres_url: str) -> Iterator[PostgresDatabase]:
    """A second replica's engine on the same database."""
    engine = PostgresDatabase(postgres_url)
    yield engine
    engine.close()


def expire(db: PostgresDatabase) -> None:
    """The database clock passes the lease's expiry."""
    db.query("UPDATE ha_lease SET expires_at = expires_at - 1000, renewed_at = renewed_at - 1000")


def record(db: PostgresDatabase, group: str = "g") -> None:
    with db.transaction() as tx:
        NotificationLog.record(tx, group, "hook", ["a"], [], T0, {})


def decide(db: PostgresDatabase, group: str = "g") -> None:
    with db.transaction() as tx:
        Outbox.put(
            tx,
            group_key=group,
            channel="hook",
            group_labels=Labels({}),
            status="firing",
            alerts=[],
            firing=["a"],
            resolved=[],
            reason="new",
            now=T0,
        )


def test_one_holder_and_the_epoch_grows_at_each_takeover(
    db: PostgresDatabase, other: PostgresDatabase
) -> None:
    a = Lease(db.pool, "a", 15.0)
    b = Lease(other.pool, "b", 15.0)
    assert a.renew() and a.epoch() == 1
    assert not b.renew()
    assert (b.role().leader, b.role().holder, b.role().epoch) == (False, "a", 1)
    assert a.renew() and a.epoch() == 1  # a renewal is not a takeover
    expire(db)
    assert b.renew() and b.epoch() == 2 and b.takeovers == 1
    assert not a.renew() and a.epoch() is None and a.role().holder == "b"
    expire(db)
    assert b.renew() and b.epoch() == 3  # its own lease lapsed: taking it again is a new epoch


def test_a_restarted_replica_with_the_same_name_is_a_new_holder(
    db: PostgresDatabase, other: PostgresDatabase
) -> None:
    assert Lease(db.pool, "a", 15.0).renew()
    assert not Lease(other.pool, "a", 15.0).renew()  # same name, other process: must wait


def test_release_lets_a_follower_take_over_at_once(
    db: PostgresDatabase, other: PostgresDatabase
) -> None:
    a, b = Lease(db.pool, "a", 15.0), Lease(other.pool, "b", 15.0)
    assert a.renew() and not b.renew()
    a.release()
    assert not a.leading()
    assert b.renew() and b.epoch() == 2


def test_a_leader_stops_acting_before_its_lease_can_run_out(db: PostgresDatabase) -> None:
    mono = Mono()
    a = Lease(db.pool, "a", 15.0, monotonic=mono)
    assert a.renew()
    mono.t += 15.0 - a.margin - 0.01
    assert a.leading()
    mono.t += 0.02  # no renewal since: still inside the database's lease, but no longer acting
    assert not a.leading() and a.epoch() is None
    db.epoch = a.epoch
    with pytest.raises(Fenced):
        record(db)


def test_writes_are_refused_without_the_current_epoch(
    db: PostgresDatabase, other: PostgresDatabase
) -> None:
    decide(db)  # no replica ever led: a single sentinel on PostgreSQL writes freely
    a, b = Lease(db.pool, "a", 15.0), Lease(other.pool, "b", 15.0)
    db.epoch, other.epoch = a.epoch, b.epoch
    assert a.renew() and not b.renew()
    record(db)
    for write in (record, decide):
        with pytest.raises(Fenced, match="fenced"):
            write(other)  # a follower
    with pytest.raises(Fenced), other.transaction() as tx:
        Outbox.cancel(tx, "g", "hook")  # deleting is writing too
    assert Outbox(other).count() == 1 and NotificationLog(other).get("g", "hook") is not None

    # The leader pauses past its lease (its own clock check passed before the pause, so it
    # still writes under epoch 1); the follower takes over; the database refuses the old one.
    db.epoch = lambda: 1
    expire(db)
    assert b.renew() and b.epoch() == 2
    with pytest.raises(Fenced, match="epoch 1"):
        record(db)
    with pytest.raises(Fenced):
        Outbox(db).claim("g", "hook", T0)
    row = Outbox(other).claim("g", "hook", T0)  # the new leader claims and records
    assert row is not None
    Outbox(other).delivered(row, {}, T0)
    assert Outbox(other).count() == 0


def test_an_expired_lease_fences_even_its_holder(db: PostgresDatabase) -> None:
    a = Lease(db.pool, "a", 15.0)
    assert a.renew()
    db.epoch = lambda: 1
    record(db)
    expire(db)
    with pytest.raises(Fenced, match="expired"):
        record(db)


def test_a_lone_sentinel_takes_over_a_database_whose_pair_is_gone(
    db: PostgresDatabase, other: PostgresDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """ha turned off: the pair's leftover lease would fence every write of one sentinel
    without ha. Still held, it refuses to start; run out, it is cleared and writes go."""
    a = Lease(db.pool, "a", 15.0)
    assert a.renew()
    with pytest.raises(ConfigError, match="replica 'a' holds the HA lease"):
        leave_ha(other)
    with pytest.raises(Fenced):
        record(other)  # still fenced: nothing was taken from the running replica
    expire(db)
    with caplog.at_level(logging.WARNING, logger="sentinel.ha"):
        leave_ha(other)
    assert "its fencing is lifted" in caplog.text
    record(other)  # no epoch: a lone sentinel writes freely again
    decide(other)
    leave_ha(other)  # nothing left to clear: a no-op


def test_an_unreachable_database_counts_renew_failures(postgres_url: str) -> None:
    mono = Mono()
    engine = PostgresDatabase(postgres_url)
    a = Lease(engine.pool, "a", 15.0, monotonic=mono)
    assert a.renew()
    engine.pool.close()  # every renewal now fails, as with the server gone
    assert a.renew() and a.renew_failures == 1  # still inside its lease
    mono.t += 15.0
    assert not a.renew() and a.renew_failures == 2 and not a.role().leader


def test_a_leader_paused_inside_a_transaction_does_not_block_a_takeover(
    db: PostgresDatabase, other: PostgresDatabase
) -> None:
    a, b = Lease(db.pool, "a", 15.0), Lease(other.pool, "b", 15.0)
    assert a.renew()
    db.epoch, db.fenced_idle_ms = a.epoch, 500
    with pytest.raises(db.failures), db.transaction() as tx:
        NotificationLog.record(tx, "g", "hook", ["a"], [], T0, {})  # share-locks the lease row
        # Paused here: the server ends the idle transaction, which lets these through.
        expire(other)
        assert b.renew() and b.epoch() == 2
    assert NotificationLog(other).get("g", "hook") is None
