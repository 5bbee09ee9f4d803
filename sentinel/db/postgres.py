"""The PostgreSQL engine: the state replicas share (storage.url), over a psycopg 3 pool.

Unlike the SQLite engine there is no copy in memory to fall back on: PostgreSQL is the shared
truth, and a replica that cannot reach it must not act as if it could (a leader stops sending
once its lease runs out, sentinel/ha/lease.py). A failing statement raises one of `failures`;
`health()` says since when, and the next statement that works clears it.

Nothing here depends on session state, so PgBouncer's transaction pooling is fine: the epoch a
leader writes under is set per transaction (`set_config(..., true)`), and migrations take a
transaction-scoped advisory lock so two replicas starting together do not both migrate.
Repositories write `?` placeholders (the SQLite spelling); they become `%s` here.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from sentinel.db import schema
from sentinel.db.engine import Fenced, Params
from sentinel.db.health import StorageHealth

log = logging.getLogger("sentinel.storage")

FENCED_SQLSTATE = "SF001"  # raised by sentinel_fence() (migrations/007_ha_lease.postgresql.sql)
MIGRATION_LOCK = 0x53454E54  # "SENT": pg_advisory_xact_lock key while migrating
CONNECT_TIMEOUT = 5  # seconds; a replica must notice an unreachable database within its lease


# A lost or refused connection, or a server that cannot serve (shutting down, disk full,
# read-only standby); PoolTimeout is "no connection could be had". A bad statement
# (ProgrammingError) is a bug, not an outage: it is not one of them.
class StorageDown(Exception):
    """Raised at once, without waiting on the pool, while the database is known to be away."""


STORAGE_ERRORS: tuple[type[Exception], ...] = (
    StorageDown,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.DiskFull,
    psycopg.errors.IdleInTransactionSessionTimeout,  # a transaction cut by fenced_idle_ms
    PoolTimeout,
)


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    # The repositories' SQL holds no literal `?` or `%`; a literal `%` would be a format escape.
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """The URL without its password, for logs and /readyz."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://<unparseable url>"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"


class _Tx:
    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(_placeholders(sql), params)

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        rows = list(seq)
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(_placeholders(sql), rows)


class PostgresDatabase:
    """The PostgreSQL engine (sentinel.db.engine.Engine)."""

    dialect = "postgresql"
    failures = STORAGE_ERRORS

    def __init__(
        self,
        url: str,
        *,
        now: Callable[[], float] = time.time,
        max_size: int = 8,
        timeout: float = 3.0,
    ) -> None:
        self.url = url
        self.path = redact(url)
        self._now = now
        self._lock = threading.Lock()
        self.errors = 0
        self.failing_since: float | None = None
        self.reason: str | None = None
        # Which epoch this replica writes under while it leads (None: not leading, or no HA);
        # set by the lease, read at the start of every transaction.
        self.epoch: Callable[[], int | None] = lambda: None
        # A fenced transaction holds a share lock on the lease row until it ends: a leader
        # paused inside one (SIGSTOP, a stalled VM) would block every takeover. The server
        # ends such a transaction once it is idle this long (set by the lease: lease/3).
        self.fenced_idle_ms = 5000
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                # A partition that drops packets must end a query, not hang the evaluation
                # on a socket forever: TCP keepalives, and a bound on unacknowledged data.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
                "tcp_user_timeout": 10_000,
                # No server-side prepared statements: behind PgBouncer's transaction pooling
                # the next transaction may run on another server connection.
                "prepare_threshold": None,
            },
            open=False,
            name="sentinel",
        )
        self.pool.open(wait=True, timeout=timeout)
        try:
            self._migrate()
        except BaseException:
            self.pool.close()
            raise

    def _migrate(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS sentinel_schema"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                "  applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in conn.execute("SELECT version FROM sentinel_schema")}
            for step in schema.steps(self.dialect):
                if step.version in done:
                    continue
                if step.sql.strip():  # empty: a step only the other engine needs
                    conn.execute(step.sql.encode())  # several statements: simple protocol
                conn.execute(
                    "INSERT INTO sentinel_schema (version, name) VALUES (%s, %s)",
                    (step.version, step.name),
                )
                log.info("storage %s: migrated to %s", self.path, step.name)

    # -- the interface the repositories use ----------------------------------------------------

    @contextmanager
    def transaction(self, *, probe: bool = False) -> Iterator[_Tx]:
        # While the database is away, every caller would otherwise wait out the pool's timeout
        # (an evaluation stalled for seconds per read); only check() probes, every few seconds.
        if self.reason is not None and not probe:
            raise StorageDown(self.reason)
        try:
            with self.pool.connection() as conn, conn.transaction():
                epoch = self.epoch()
                if epoch is not None:
                    conn.execute(
                        "SELECT set_config('sentinel.epoch', %s, true),"
                        " set_config('idle_in_transaction_session_timeout', %s, true)",
                        (str(epoch), str(self.fenced_idle_ms)),
                    )
                yield _Tx(conn)
        except STORAGE_ERRORS as e:
            self._fail(e)
            raise
        except psycopg.Error as e:
            if e.sqlstate == FENCED_SQLSTATE:
                raise Fenced(str(e.diag.message_primary or e)) from e
            raise
        self._ok()

    def query(self, sql: str, params: Params = ()) -> list[Any]:
        with self.transaction() as tx:
            cur = tx.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    # -- health ----------------------------------------------------------------------------

    def health(self) -> StorageHealth:
        with self._lock:
            return StorageHealth(
                healthy=self.reason is None,
                reason=self.reason,
                failing_since=self.failing_since,
                errors=self.errors,
                path=self.path,
            )

    def check(self) -> bool:
        """Run periodically: a round trip, so health is known even while nothing writes."""
        try:
            with self.transaction(probe=True) as tx:
                tx.execute("SELECT 1")
        except STORAGE_ERRORS:
            return False
        return True

    def close(self) -> None:
        self.pool.close()

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self.errors += 1
            if self.reason is not None:
                return
            self.reason = f"{self.path}: {type(error).__name__}: {error}".strip()
            self.failing_since = self._now()
        log.error("STORAGE FAILING: %s", self.reason)

    def _ok(self) -> None:
        if self.reason is None:
            return
        with self._lock:
            since, self.reason, self.failing_since = self.failing_since, None, None
        log.warning(
            "storage %s works again after %.0fs", self.path, self._now() - (since or self._now())
        )
