"""Migration 005: a state file whose alerts were fingerprinted the old way (SHA-256, before
0.2) is read with Prometheus fingerprints, and a firing alert is not paged again.

The old file is made the way the old version made it: the pipeline runs and pages, then every
fingerprint it stored is put back to the old spelling and the schema version to 4 (every
migration before 005 applied, 005 not).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sentinel.alerts.repo import SqlAlertRepo
from sentinel.clock import FakeClock
from sentinel.fingerprint import fingerprint_v1
from sentinel.model import Alert
from tests.helpers import T0
from tests.unit.notify.harness import (
    GROUP_INTERVAL,
    GROUP_WAIT,
    REPEAT,
    Harness,
    firing,
    resolve,
)


def downgrade(path: Path, alerts: list[Alert]) -> None:
    """Rewrite the file as the version before 005 would have left it."""
    old = {a.fingerprint: fingerprint_v1(a.labels) for a in alerts}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for new, legacy in old.items():
            conn.execute("UPDATE alerts SET fingerprint = ? WHERE fingerprint = ?", (legacy, new))
        for table in ("nflog", "outbox"):
            for row in conn.execute(f"SELECT rowid, firing, resolved FROM {table}").fetchall():
                lists = [json.dumps(sorted(old.get(f, f) for f in json.loads(x))) for x in row[1:]]
                conn.execute(
                    f"UPDATE {table} SET firing = ?, resolved = ? WHERE rowid = ?",
                    (*lists, row[0]),
                )
        # Tables of later migrations did not exist yet either.
        conn.execute("DROP TABLE IF EXISTS notification_history")
        conn.execute("PRAGMA user_version = 4")
    finally:
        conn.close()


def stored_fingerprints(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        out = {"alerts": [r[0] for r in conn.execute("SELECT fingerprint FROM alerts")]}
        for table in ("nflog", "outbox"):
            for column in ("firing", "resolved"):
                out[f"{table}.{column}"] = sorted(
                    f
                    for (x,) in conn.execute(f"SELECT {column} FROM {table}")
                    for f in json.loads(x)
                )
        out["version"] = [conn.execute("PRAGMA user_version").fetchone()[0]]
        return out
    finally:
        conn.close()


def test_an_upgrade_neither_repages_nor_forgets(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    backlog, idle = firing("QueueBacklog", queue="q1"), firing("IdleWorker", worker="w1")
    # The old daemon: both page; then IdleWorker resolves and its resolve waits in the outbox.
    before = Harness(path, FakeClock(T0))
    assert len(before.run(0, GROUP_WAIT, [backlog, idle])) == 2
    gone = resolve(idle, GROUP_WAIT + 30)
    before.notifiers["pager"].always = ConnectionError("pager down")
    assert before.run(GROUP_WAIT + 30, GROUP_WAIT + GROUP_INTERVAL, [backlog, gone]) == []
    SqlAlertRepo(before.db).save([backlog, gone], [])
    before.close()
    downgrade(path, [backlog, gone])
    legacy = stored_fingerprints(path)
    assert fingerprint_v1(backlog.labels) in legacy["nflog.firing"]
    assert backlog.fingerprint not in legacy["nflog.firing"]

    restart = GROUP_WAIT + GROUP_INTERVAL + 15
    after = Harness(path, FakeClock(T0 + restart))
    stored = stored_fingerprints(path)
    assert stored["version"][0] >= 5
    assert sorted(stored["alerts"]) == sorted([backlog.fingerprint, gone.fingerprint])
    assert backlog.fingerprint in stored["nflog.firing"]
    assert stored["outbox.resolved"] == [gone.fingerprint]
    loaded = SqlAlertRepo(after.db).load()
    assert set(loaded) == {backlog.fingerprint, gone.fingerprint}
    # The queued resolve goes out, and the still-firing backlog is not paged again.
    sent = after.run(restart, restart + GROUP_WAIT, list(loaded.values()))
    assert [(n.status, [a.labels["alertname"] for a in n.alerts]) for n in sent] == [
        ("resolved", ["IdleWorker"])
    ]
    assert after.run(restart + GROUP_WAIT + 15, REPEAT - 60, [backlog]) == []
    # ... until its repeat_interval, counted from the page the old version sent.
    assert [n.status for n in after.run(REPEAT - 45, REPEAT + GROUP_INTERVAL, [backlog])] == [
        "firing"
    ]
    after.close()


def test_a_current_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    alert = firing("QueueBacklog", queue="q1")
    h = Harness(path, FakeClock(T0))
    h.run(0, GROUP_WAIT, [alert])
    SqlAlertRepo(h.db).save([alert], [])
    h.close()
    before = stored_fingerprints(path)
    Harness(path, FakeClock(T0 + 60)).close()
    assert stored_fingerprints(path) == before
