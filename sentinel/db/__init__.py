"""Database engines: connections, migrations and health, nothing domain-specific. The domain
repositories (alerts/repo.py, notify/nflog.py, notify/outbox.py, notify/silence/repo.py) sit on
the narrow interface of db/engine.py; SQLite (db/sqlite.py) and PostgreSQL (db/postgres.py)
implement it, both migrated from the one schema description in db/schema.py."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sentinel.db.engine import Engine, StorageUnavailable


def open_engine(storage: Any, now: Callable[[], float]) -> Engine:
    """The engine `storage:` names: PostgreSQL for `url`, SQLite for `path`. PostgreSQL's
    driver is an optional extra, imported only when a url asks for it."""
    if storage.url is None:
        from sentinel.db.sqlite import Database

        return Database(storage.path, now=now)
    try:
        postgres = importlib.import_module("sentinel.db.postgres")
    except ModuleNotFoundError as e:
        raise StorageUnavailable(
            f"storage.url needs {e.name}: pip install 'sentinel-celery[postgres]'"
        ) from e
    url = storage.url.get_secret_value()
    try:
        engine: Engine = postgres.PostgresDatabase(url, now=now)
    except postgres.STORAGE_ERRORS as e:
        raise StorageUnavailable(f"{postgres.redact(url)}: {e}") from e
    return engine
