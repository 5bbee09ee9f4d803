"""The narrow interface every storage engine offers the repositories: a transaction that
executes portable SQL (`?` placeholders, the subset SQLite and PostgreSQL share), a one-shot
query, its health, and what a failing store raises. SQLite (db/sqlite.py) and PostgreSQL
(db/postgres.py) implement it; the repositories (alerts/repo.py, notify/nflog.py,
notify/outbox.py, notify/silence/repo.py) know nothing else."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sentinel.db.health import StorageHealth

Params = Any  # a tuple, list or mapping of SQL parameters
Row = Mapping[str, Any]  # sqlite3.Row and psycopg's dict_row both read by column name


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class Tx(Protocol):
    """One transaction: everything executed through it commits together or not at all."""

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...

    def executemany(self, sql: str, seq: Iterable[Params]) -> Any: ...


class Engine(Protocol):
    dialect: str  # "sqlite" | "postgresql": which migration scripts apply
    # What a failing store raises (disk full, connection lost): callers that must carry on
    # without storage (a page still goes out) catch exactly these.
    failures: tuple[type[Exception], ...]

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def query(self, sql: str, params: Params = ()) -> list[Any]: ...

    def health(self) -> StorageHealth: ...

    def check(self) -> bool: ...

    def close(self) -> None: ...


class Fenced(Exception):
    """The database refused a write from a leader whose lease is gone (a newer epoch holds it,
    or it expired): that replica must not act on what it was about to record."""


class StorageUnavailable(Exception):
    """The configured store cannot be opened (driver missing, database unreachable)."""
