"""The leader lease: one row in PostgreSQL, taken and renewed with the database's clock.

A replica renews every lease/3. The database decides who holds it (`expires_at` is computed
and compared there, so replicas' clocks never matter); the epoch grows on every takeover, and
every write the leader makes carries it (`PostgresDatabase.epoch`). Locally a replica counts
itself leader only until `lease - margin` after it *sent* its last successful renewal, measured
on its monotonic clock: that is earlier than the database's expiry, so a leader that cannot
renew (database unreachable, process paused) stops sending before anyone else may start, and
anything that slips through is refused by the database as stale.

Nothing depends on session state or advisory locks, so a PgBouncer in transaction pooling
mode in front of the database is fine.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from sentinel.ha.role import Role

log = logging.getLogger("sentinel.ha")

_NOW = "extract(epoch FROM clock_timestamp())"
# Take the lease if it is free (never taken, expired) or ours; the epoch moves unless this is
# a renewal of our own unexpired lease.
_ACQUIRE = f"""
INSERT INTO ha_lease AS l (id, holder, token, epoch, expires_at, renewed_at)
VALUES (1, %(holder)s, %(token)s, 1, {_NOW} + %(lease)s, {_NOW})
ON CONFLICT (id) DO UPDATE SET
    holder = excluded.holder,
    token = excluded.token,
    epoch = l.epoch + CASE WHEN l.token = excluded.token AND l.expires_at > excluded.renewed_at
                           THEN 0 ELSE 1 END,
    expires_at = excluded.expires_at,
    renewed_at = excluded.renewed_at
WHERE l.token = excluded.token OR l.expires_at <= excluded.renewed_at
RETURNING epoch, expires_at - renewed_at AS left
"""
_CURRENT = f"SELECT holder, epoch, expires_at - {_NOW} AS left FROM ha_lease WHERE id = 1"
_RELEASE = f"UPDATE ha_lease SET expires_at = {_NOW} WHERE id = 1 AND token = %(token)s"


def lease_for(db: object, replica: str, duration: float) -> Lease:
    """The lease over a PostgreSQL engine, and that engine's writes fenced by it."""
    from sentinel.db.postgres import PostgresDatabase

    if not isinstance(db, PostgresDatabase):
        raise TypeError("ha needs the PostgreSQL engine (storage.url)")
    lease = Lease(db.pool, replica, duration)
    db.epoch = lease.epoch
    db.fenced_idle_ms = int(duration * 1000 / 3)
    return lease


class Lease:
    def __init__(
        self,
        pool: Any,  # psycopg_pool.ConnectionPool (the engine's)
        replica: str,
        duration: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_takeover: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.replica = replica
        self.duration = duration
        self.renew_every = duration / 3
        # Stop acting this long before the lease can run out: covers a send that started just
        # before (it finishes inside the lease) and a renewal that was slow to answer.
        self.margin = duration / 5
        self.token = uuid.uuid4().hex  # this process: a restarted replica is a new holder
        self._monotonic = monotonic
        self.on_takeover = on_takeover
        self._lock = threading.Lock()
        self._epoch: int | None = None  # ours, while we hold it
        self._until = 0.0  # monotonic time until which we may act as leader
        self._seen_epoch: int | None = None
        self._holder: str | None = None
        self.renew_failures = 0
        self.takeovers = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the rest of sentinel reads -----------------------------------------------------

    def leading(self) -> bool:
        with self._lock:
            return self._epoch is not None and self._monotonic() < self._until

    def epoch(self) -> int | None:
        """The epoch to write under, or None when this replica must not write as leader."""
        with self._lock:
            return self._epoch if self._monotonic() < self._until else None

    def role(self) -> Role:
        leading = self.leading()
        with self._lock:
            return Role(
                replica=self.replica,
                leader=leading,
                epoch=self._epoch if leading else self._seen_epoch,
                holder=self.replica if leading else self._holder,
                renew_failures=self.renew_failures,
                takeovers=self.takeovers,
            )

    # -- one round (the thread's body; tests call it directly) -------------------------------

    def renew(self) -> bool:
        """Take or renew the lease once; True while this replica leads."""
        try:
            with self.pool.connection() as conn:
                # Measured once a connection is in hand (a reconnecting pool can take seconds
                # to give one) and before the statement: still no later than the database's
                # clock_timestamp() in it, so the local deadline stays inside the lease.
                sent = self._monotonic()
                row = conn.execute(
                    _ACQUIRE,
                    {"holder": self.replica, "token": self.token, "lease": self.duration},
                ).fetchone()
                current = None if row is not None else conn.execute(_CURRENT).fetchone()
        except (psycopg.Error, PoolTimeout) as e:  # out of reach, or refusing: not renewed
            with self._lock:
                self.renew_failures += 1
                left = self._until - self._monotonic() if self._epoch is not None else None
            if left is not None and left > 0:
                log.error(
                    "ha: cannot renew the lease (%s: %s); still leader for %.1fs, then sending "
                    "stops until the database answers",
                    type(e).__name__,
                    e,
                    left,
                )
            else:
                log.error("ha: cannot renew the lease (%s: %s); following", type(e).__name__, e)
            return self.leading()
        with self._lock:
            held = self._epoch  # ours at the last renewal, even if we stopped acting on it since
            was = held if self._monotonic() < self._until else None
            if row is not None:
                epoch = int(row["epoch"])
                self._epoch = self._seen_epoch = epoch
                self._holder = self.replica
                # Never past what the database granted, measured from before we asked.
                self._until = sent + min(self.duration, float(row["left"])) - self.margin
                took = epoch != was
                if took:
                    self.takeovers += 1
            else:
                self._epoch = None
                self._until = 0.0
                self._seen_epoch = int(current["epoch"]) if current else None
                self._holder = current["holder"] if current and current["left"] > 0 else None
                took = False
        if took:
            log.warning(
                "ha: %s is now the leader (epoch %d): sending what the outbox holds",
                self.replica,
                epoch,
                extra={"replica": self.replica, "epoch": epoch, "role": "leader"},
            )
            if self.on_takeover is not None:
                self.on_takeover(epoch)
        elif row is None and held is not None:
            log.warning(
                "ha: %s lost the lease to %s (epoch %s): following",
                self.replica,
                self._holder,
                self._seen_epoch,
                extra={"replica": self.replica, "epoch": self._seen_epoch, "role": "follower"},
            )
        return row is not None

    def release(self) -> None:
        """At shutdown, after the last send: the lease ends now, so a follower need not wait."""
        with self._lock:
            held, self._epoch, self._until = self._epoch, None, 0.0
        if held is None:
            return
        try:
            with self.pool.connection() as conn:
                conn.execute(_RELEASE, {"token": self.token})
        except (psycopg.Error, PoolTimeout) as e:  # the lease then simply runs out
            log.warning("ha: could not release the lease (%s); it expires on its own", e)
        else:
            log.info("ha: %s released the lease (epoch %d)", self.replica, held)

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        self.renew()  # know the role before the first evaluation
        self._thread = threading.Thread(target=self._run, name="sentinel-ha-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.renew()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.release()
