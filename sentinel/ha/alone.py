"""A database an HA pair used, opened by one sentinel without `ha`.

Once any replica has held the lease, the database refuses every alert, outbox and nflog write
that does not carry the lease's epoch (migrations/007_ha_lease.postgresql.sql): a sentinel
started without `ha.enabled` on such a database would evaluate, and then have each write
refused. So at start: a lease that is still held means a replica is running — refuse to start,
saying so; a lease that has run out is what a pair leaves behind when it was turned off, and is
cleared (logged), so that one sentinel can take the database over alone.
"""

from __future__ import annotations

import logging

from sentinel.config.loader import ConfigError
from sentinel.db.engine import Engine

log = logging.getLogger("sentinel.ha")

_NOW = "extract(epoch FROM clock_timestamp())"  # the database's clock, as the lease's


def leave_ha(db: Engine) -> None:
    """Make `db` writable for a sentinel without `ha` (see the module doc); ConfigError if a
    replica holds its lease. SQLite never holds one: nothing to do there (the caller need not
    call this for SQLite at all, and imports no PostgreSQL driver then)."""
    from sentinel.db.postgres import PostgresDatabase  # psycopg: only with storage.url

    if not isinstance(db, PostgresDatabase):
        return
    rows = db.query(f"SELECT holder, epoch, expires_at - {_NOW} AS left FROM ha_lease WHERE id = 1")
    if not rows:
        return  # no replica ever led: nothing is fenced
    holder, epoch, left = rows[0]["holder"], rows[0]["epoch"], float(rows[0]["left"])
    if left > 0:
        raise ConfigError(
            [
                f"ha: replica {holder!r} holds the HA lease of this database (epoch {epoch}, "
                f"{left:.0f}s left) and a sentinel without ha.enabled would have every write "
                "refused; set ha.enabled (and ha.replica) to join it, or stop that replica first"
            ]
        )
    with db.transaction() as tx:
        cleared = tx.execute(f"DELETE FROM ha_lease WHERE id = 1 AND expires_at <= {_NOW}")
        if cleared.rowcount:
            log.warning(
                "ha: this database was last used by an HA pair (replica %r, epoch %s; its lease "
                "ran out): running without ha, its fencing is lifted",
                holder,
                epoch,
            )
