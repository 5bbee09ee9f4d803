"""Storage that fails: the state carries on in memory, says so, and goes back to the file.

SQLite is made to fail for real: `PRAGMA max_page_count` on the file's connection gives the
same SQLITE_FULL ("database or disk is full") as a full disk; a deleted or replaced file is a
real unlink or rename. (A real full tmpfs is in tests/integration/test_storage_faults.py.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from sentinel.alerts.repo import SqlAlertRepo
from sentinel.api.health import not_ready
from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Labels, State
from sentinel.notify.nflog import NotificationLog
from tests.helpers import T0
from tests.unit.notify.harness import CONFIG as PIPELINE_CONFIG
from tests.unit.notify.harness import Harness, firing

BIG = "x" * 20_000  # a memo large enough to need new pages


def fill_disk(db: Database) -> None:
    """Cap the file at the pages it has: the next write that needs a page fails as a full disk."""
    disk = db._disk
    assert disk is not None
    pages = disk.execute("PRAGMA page_count").fetchone()[0]
    disk.execute(f"PRAGMA max_page_count={pages}")


def make_readonly(db: Database) -> None:
    """Every write to the file fails (SQLITE_READONLY), as on a read-only mount."""
    disk = db._disk
    assert disk is not None
    disk.execute("PRAGMA query_only=1")


def record(db: Database, group: str, memo: str = BIG) -> None:
    with db.transaction() as conn:
        NotificationLog.record(conn, group, "pager", ["fp"], [], T0, {"m": memo})


def on_disk(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_full_disk_keeps_the_state_in_memory_and_writes_it_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sentinel.db"
    clock = FakeClock(T0)
    db = Database(path, now=clock.now)
    record(db, "g0", "small")
    fill_disk(db)
    with caplog.at_level(logging.ERROR, "sentinel.storage"):
        record(db, "g1")  # no exception: the caller carries on
        record(db, "g2")
    health = db.health()
    assert not health.healthy and health.errors == 1
    assert "database or disk is full" in (health.reason or "")
    assert [r.levelname for r in caplog.records] == ["ERROR"]  # once per episode
    assert "STORAGE FAILING" in caplog.records[0].getMessage()
    nflog = NotificationLog(db)
    assert nflog.get("g1", "pager") is not None  # reads see the memory copy
    assert on_disk(path, "SELECT group_key FROM nflog") == [("g0",)]

    assert db.check()  # the cap was on the old connection: the file can be written again
    assert db.health().healthy
    assert sorted(on_disk(path, "SELECT group_key FROM nflog")) == [("g0",), ("g1",), ("g2",)]
    record(db, "g3", "small")  # and writes go to the file again
    db.close()
    assert len(on_disk(path, "SELECT group_key FROM nflog")) == 4


def test_reminders_while_storage_stays_unwritable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    blocked = tmp_path / "not-a-dir"
    db = Database(tmp_path / "ok" / "sentinel.db", now=clock.now, remind_every=300)
    record(db, "g0", "small")
    db.path = str(blocked / "sentinel.db")  # its parent is a file: nothing can be created
    blocked.write_text("")
    with caplog.at_level(logging.ERROR, "sentinel.storage"):
        assert not db.check()  # "deleted", and cannot be recreated
        clock.advance(60)
        assert not db.check()  # quiet: reminded at most every 300 s
        clock.advance(300)
        assert not db.check()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "STORAGE FAILING" in messages[0] and "still failing for 360s" in messages[1]
    assert NotificationLog(db).get("g0", "pager") is not None
    db.close()


def test_a_deleted_file_is_recreated_from_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sentinel.db"
    db = Database(path)
    record(db, "g0", "small")
    os.unlink(path)
    record(db, "g1", "small")  # goes to the unlinked inode: lost on disk, kept in memory
    with caplog.at_level(logging.ERROR, "sentinel.storage"):
        assert db.check()
    assert any("was deleted" in r.getMessage() for r in caplog.records)
    assert db.health().healthy and db.health().errors == 1
    assert sorted(on_disk(path, "SELECT group_key FROM nflog")) == [("g0",), ("g1",)]
    db.close()
    again = Database(path)  # a restart reads the recreated file
    assert NotificationLog(again).get("g1", "pager") is not None
    again.close()


def test_a_replaced_file_is_moved_aside_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    db = Database(path)
    record(db, "g0", "small")
    other = tmp_path / "other.db"
    on_disk(other, "CREATE TABLE t (x)")
    os.replace(other, path)
    assert db.check()
    assert on_disk(path, "SELECT group_key FROM nflog") == [("g0",)]
    [aside] = tmp_path.glob("sentinel.db.foreign-*")
    assert on_disk(aside, "SELECT name FROM sqlite_master") == [("t",)]
    db.close()


def test_an_unreadable_file_at_start_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    path.write_bytes(b"not a database" * 100)
    db = Database(path)
    assert not db.health().healthy
    repo = SqlAlertRepo(db)
    assert repo.load() == {}
    assert db.check()
    assert [p.read_bytes()[:14] for p in tmp_path.glob("sentinel.db.foreign-*")] == [
        b"not a database"
    ]
    db.close()


def test_pages_while_degraded_are_neither_lost_nor_repeated_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sentinel.db"
    clock = FakeClock(T0)
    h = Harness(path, clock)
    make_readonly(h.db)
    a = firing(queue="celery")
    assert h.at(0, [a]) == []
    [sent] = h.at(30, [a])  # the decision and the delivery went to memory only
    assert sent.status == "firing"
    assert not h.db.health().healthy
    assert h.run(45, 600, [a]) == []  # dedup from memory: no second page
    assert h.db.check()
    h.close()
    restarted = Harness(path, clock)  # the state written back is what a restart reads
    assert restarted.run(615, 1200, [a]) == []
    restarted.close()
    assert PIPELINE_CONFIG  # the same route and channels as the pipeline tests


CONFIG = """
celery:
  broker_url: redis://127.0.0.1:1/0
storage:
  path: {path}
defaults:
  labels: {{env: prod}}
route:
  channels: [hook]
  group_wait: 0s
channels:
  hook: {{type: log}}
"""


def test_storage_failing_is_an_alert_a_readiness_reason_and_a_metric(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    s = Sentinel(parse(CONFIG.format(path=tmp_path / "sentinel.db"), env={}), clock)
    s.queues = None
    assert s.db is not None
    registry = s.metrics_registry()
    s.evaluate()
    assert not s.book.alerts
    assert not any(
        r.startswith("storage") for r in not_ready(s.api_ports().health.health(), clock.now())
    )
    assert "sentinel_storage_healthy 1.0" in generate_latest(registry).decode()

    make_readonly(s.db)
    record(s.db, "g")
    clock.advance(30)
    s.evaluate()
    [alert] = s.book.alerts.values()
    assert alert.labels == Labels(
        {"alertname": "StorageFailing", "severity": "error", "env": "prod"}
    )
    assert alert.state is State.FIRING and alert.value == 30.0
    assert "restart now would forget" in alert.annotations["summary"]
    [reason] = [
        r for r in not_ready(s.api_ports().health.health(), clock.now()) if r.startswith("storage")
    ]
    assert "readonly" in reason
    text = generate_latest(registry).decode()
    assert "sentinel_storage_healthy 0.0" in text
    assert "sentinel_storage_errors_total 1.0" in text
    assert s.dispatcher is not None and s.dispatcher.groups  # routed like any alert

    s.check_storage()
    clock.advance(15)
    s.evaluate()
    [alert] = s.book.alerts.values()
    assert alert.state is State.RESOLVED
    s.db.close()
