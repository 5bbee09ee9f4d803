"""One SQLite file holds everything that must survive a restart; a copy in memory keeps sentinel
paging when that file cannot be written.

Every transaction runs on an in-memory SQLite copy first (the state sentinel works from, so a
read never touches the disk), and the same statements are then replayed on the file in one
transaction before the memory copy commits. A decision is therefore on disk before it is acted
on, as long as the disk works. When the file fails (disk full, I/O error, read-only, deleted or
replaced) the memory copy carries on alone (degraded: no page is lost, none is sent twice,
because the outbox and the notification log in memory stay exact) and `check()`, run
periodically, writes the whole memory copy back to the path once that works again.

A single lock serialises everything: writes are few (once per evaluation, once per send), and
one writer means no SQLITE_BUSY. Migrations are numbered .sql files applied in order, tracked by
PRAGMA user_version. The repositories see only the narrow interface of db/engine.py, which
db/postgres.py implements again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel.db import schema
from sentinel.db.engine import Params
from sentinel.db.health import StorageHealth
from sentinel.fingerprint import sql_functions

log = logging.getLogger("sentinel.storage")

# What a failing file raises: SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CORRUPT
# (sqlite3.Error), or the filesystem itself while recreating it (OSError).
STORAGE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
# While degraded, the ERROR log repeats this often, so a long episode is not one old line.
REMIND_EVERY = 300.0
WAL_PAGES = 256


@dataclass(frozen=True, slots=True)
class _Write:
    sql: str
    params: Params
    many: bool


def _is_write(sql: str) -> bool:
    return not sql.lstrip()[:6].upper().startswith(("SELECT", "PRAGMA"))


class Transaction:
    """What `Database.transaction()` yields: executes on the memory copy and remembers every
    write, to replay on the file. Anything else is the memory connection's own."""

    __slots__ = ("_conn", "writes")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.writes: list[_Write] = []

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        cursor = self._conn.execute(sql, params)
        if _is_write(sql):
            self.writes.append(_Write(sql, params, False))
        return cursor

    def executemany(self, sql: str, seq: Iterable[Params]) -> sqlite3.Cursor:
        rows = list(seq)  # a generator would be spent by the first of the two executions
        cursor = self._conn.executemany(sql, rows)
        if rows:
            self.writes.append(_Write(sql, rows, True))
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    # What migration 005 computes that SQL cannot: alert fingerprints from labels.
    for name, function in sql_functions().items():
        conn.create_function(name, 1, function, deterministic=True)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for step in schema.steps("sqlite"):
        if step.version <= version:
            continue
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{step.sql}\nPRAGMA user_version={step.version};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Database:
    """The SQLite engine (sentinel.db.engine.Engine)."""

    dialect = "sqlite"
    failures = STORAGE_ERRORS

    def __init__(
        self,
        path: str | Path,
        *,
        now: Callable[[], float] = time.time,
        durable: bool = True,
        remind_every: float = REMIND_EVERY,
    ) -> None:
        self.path = str(path)
        self._now = now
        # FULL: a committed decision (a page to send, a send recorded) survives power loss too.
        # Tests that replay a month of traffic may trade that for speed.
        self._synchronous = "FULL" if durable else "NORMAL"
        self._remind_every = remind_every
        self._lock = threading.RLock()
        self._mem = _connect(":memory:")
        self._disk: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we write
        self._unreadable = False  # the file at start could not be read: keep it aside, not lose it
        self._closed = False
        self.errors = 0  # storage failures since start (sentinel_storage_errors_total)
        self.recoveries = 0
        self.failing_since: float | None = None
        self.reason: str | None = None
        self._reminded_at = 0.0
        if self.path == ":memory:":
            _migrate(self._mem)
            return
        try:
            self._disk = self._open()
            try:
                _migrate(self._disk)
            finally:
                # Whatever the file holds, even when it cannot take the migration (disk full).
                self._disk.backup(self._mem)
        except STORAGE_ERRORS as e:
            if self._mem_is_empty():
                self._read_only_copy()
            self._unreadable = self._mem_is_empty() and os.path.exists(self.path)
            self._fail(e, "could not be opened")
        _migrate(self._mem)

    # -- the interface the repositories use ----------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            self._mem.execute("BEGIN IMMEDIATE")
            tx = Transaction(self._mem)
            try:
                yield tx
            except BaseException:
                self._mem.execute("ROLLBACK")
                raise
            try:
                if tx.writes and self._disk is not None and self.reason is None:
                    try:
                        self._replay(self._disk, tx.writes)
                    except STORAGE_ERRORS as e:
                        # The file keeps its state from before this transaction and is stale
                        # from now on: nothing is replayed on it until it is rewritten whole.
                        self._fail(e, "write failed")
            finally:
                # The memory copy is what sentinel works from: it takes the transaction
                # whatever happened to the file.
                self._mem.execute("COMMIT")

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        if _is_write(sql):
            with self.transaction() as tx:
                return tx.execute(sql, params).fetchall()
        with self._lock:
            return self._mem.execute(sql, params).fetchall()

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
        """Run periodically: notice a deleted or replaced file, write the state back after a
        failure. True when the file holds the current state."""
        with self._lock:
            if self._closed or self.path == ":memory:":
                return True
            if self.reason is None:
                changed = self._file_changed()
                if changed is None:
                    return True
                self._fail(OSError(changed), "file changed; recreating it from memory")
            return self.check_now()

    def check_now(self) -> bool:
        """Try to write the whole memory copy to the path now (while degraded)."""
        with self._lock:
            if self.reason is None:
                return True
            try:
                self._rewrite()
            except STORAGE_ERRORS as e:
                now = self._now()
                if now - self._reminded_at >= self._remind_every:
                    self._reminded_at = now
                    log.error(
                        "storage %s still failing for %.0fs (%s; now %s): alerts, pages and "
                        "silences are kept in memory only; a restart now would lose them",
                        self.path,
                        now - (self.failing_since or now),
                        self.reason,
                        _describe(e),
                    )
                return False
            log.warning(
                "storage %s works again after %.0fs: the state kept in memory is written back",
                self.path,
                self._now() - (self.failing_since or self._now()),
            )
            self.recoveries += 1
            self.reason = None
            self.failing_since = None
            return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self.path != ":memory:" and (self.reason is not None or self._file_changed()):
                self.reason = self.reason or "file changed"
                if not self.check_now():
                    log.error(
                        "storage %s: the state since %s could not be saved at shutdown",
                        self.path,
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.failing_since or 0)),
                    )
            self._closed = True
            if self._disk is not None:
                with suppress(*STORAGE_ERRORS):
                    self._disk.close()
                self._disk = None
            self._mem.close()

    # -- the file --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            # A write-ahead log of at most ~1 MiB (SQLite's default lets it reach 4 MiB and
            # keeps it at that size): the file's footprint stays near the data it holds.
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
            st = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self._identity = (st.st_dev, st.st_ino)
        return conn

    def _file_changed(self) -> str | None:
        """Why the path no longer names the file we write, or None."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"database file {self.path} was deleted"
        except OSError as e:
            return f"database file {self.path} cannot be examined ({_describe(e)})"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"database file {self.path} was replaced by another file"
        return None

    def _read_only_copy(self) -> None:
        """What a file that cannot be opened for writing still holds (a read-only mount)."""
        if not os.path.exists(self.path):
            return
        with suppress(*STORAGE_ERRORS):
            src = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                src.backup(self._mem)
            finally:
                src.close()

    def _mem_is_empty(self) -> bool:
        row = self._mem.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return not row[0]

    @staticmethod
    def _replay(conn: sqlite3.Connection, writes: list[_Write]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for w in writes:
                if w.many:
                    conn.executemany(w.sql, w.params)
                else:
                    conn.execute(w.sql, w.params)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back on SQLITE_FULL / SQLITE_IOERR.
            if conn.in_transaction:
                with suppress(*STORAGE_ERRORS):
                    conn.execute("ROLLBACK")
            raise

    def _rewrite(self) -> None:
        """Replace the file with the memory copy: write a temporary file, then rename it over.

        A foreign file found at the path (replaced, or unreadable at start) is moved aside, not
        overwritten. The old file's -wal/-shm are removed first: SQLite would replay a stale
        write-ahead log into the new file.
        """
        if self._disk is not None:
            with suppress(*STORAGE_ERRORS):
                self._disk.close()
            self._disk = None
        tmp = f"{self.path}.tmp"
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        dest = sqlite3.connect(tmp)
        try:
            dest.execute(f"PRAGMA synchronous={self._synchronous}")
            self._mem.backup(dest)
        except BaseException:
            dest.close()
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dest.close()
        foreign = self._unreadable or (
            self._identity is not None
            and (st := _stat(self.path)) is not None
            and (st.st_dev, st.st_ino) != self._identity
        )
        if foreign and os.path.exists(self.path):
            aside = f"{self.path}.foreign-{int(self._now())}"
            os.replace(self.path, aside)
            log.error("storage: the file found at %s was moved to %s", self.path, aside)
        for suffix in ("-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(self.path + suffix)
        os.replace(tmp, self.path)
        _fsync_dir(self.path)
        self._unreadable = False
        self._disk = self._open()

    def _fail(self, error: BaseException, what: str) -> None:
        self.errors += 1
        if self.reason is not None:
            return
        now = self._now()
        self.reason = f"{self.path}: {what} ({_describe(error)})"
        self.failing_since = now
        self._reminded_at = now
        log.error(
            "STORAGE FAILING: %s. sentinel keeps evaluating and paging from memory and writes "
            "the state back when the file works again; a restart meanwhile loses it",
            self.reason,
        )


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _fsync_dir(path: str) -> None:
    """Make the rename itself durable (the new file's data was synced by SQLite)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
