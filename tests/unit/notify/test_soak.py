"""Soak: a month of autoscaled names on a fake clock leaves a bounded database.

10,000 distinct alert groups (one queue each, as short-lived per-pod queues make them) fire and
resolve over 30 simulated days, with silences on their workers; the daemon's own composition
(alert book, dispatcher, sender, the scheduled housekeeping) runs as it would, and the SQLite
file must stay under a stated bound because the notification log, the silences and the
notification history (kept a day here) are pruned.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from functools import partial
from pathlib import Path

import pytest

from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.notify import maintenance
from sentinel.notify.silence import Matcher, Silence
from tests.helpers import T0
from tests.unit.notify.harness import FakeNotifier

DAY = 86400.0
GROUPS = int(os.environ.get("SOAK_GROUPS", "10000"))
DAYS = int(os.environ.get("SOAK_DAYS", "30"))
STEP = 300.0  # evaluation interval of the simulation (one group_interval)
# A silence for every tenth pod: muting scans every silence kept (expired ones too, for
# SILENCE_RETENTION), so one per pod would make this test about Silencer.muted_by.
SILENCE_EVERY = 10
FIRING_FOR = 1200.0  # each incident lasts 20 minutes
# The bound this test states: the database file plus its write-ahead log (at most ~1 MiB).
BOUND = 2 << 20

CONFIG = """
celery:
  broker_url: redis://127.0.0.1:1/0
storage:
  path: {path}
  notification_history: {{keep: 1d}}
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 10
route:
  channels: [pager]
  group_by: [alertname, queue]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
channels:
  pager: {{type: log}}
"""


def db_bytes(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))


@pytest.mark.timeout(900)
def test_a_month_of_distinct_groups_keeps_the_database_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # synchronous=NORMAL: the same file and statements, without an fsync per transaction
    # (50,000 of them would make this test about disk latency).
    monkeypatch.setattr("sentinel.db.sqlite.Database", partial(Database, durable=False))
    path = tmp_path / "sentinel.db"
    clock = FakeClock(T0)
    s = Sentinel(parse(CONFIG.format(path=path), env={}), clock)
    s.queues = None  # no broker: the test sets the queue depths itself
    pager = FakeNotifier("pager")
    assert s.sender is not None and s.db is not None
    s.sender.notifiers["pager"] = pager
    spacing = DAYS * DAY / GROUPS
    started: dict[str, float] = {}
    next_group, next_housekeeping = 0, T0 + maintenance.INTERVAL
    peak = 0
    rows = {"nflog": 0, "silences": 0, "alerts": 0, "notification_history": 0}
    try:
        while (now := clock.now()) < T0 + DAYS * DAY + FIRING_FOR + 4 * STEP:
            while next_group < GROUPS and T0 + next_group * spacing <= now:
                queue = f"pod-{next_group:05d}-{uuid.uuid4().hex[:8]}"
                started[queue] = now
                if next_group % SILENCE_EVERY == 0:
                    s.silencer.put(
                        Silence(
                            str(uuid.uuid4()),
                            (Matcher("worker", "=", f"celery@{queue}"),),  # never mutes this page
                            now,
                            now + 3600.0,
                            "autoscaler",
                            "pod draining",
                            now,
                        )
                    )
                next_group += 1
            depths = {}
            for queue, at in list(started.items()):
                if now - at < FIRING_FOR:
                    depths[queue] = (100, 1)
                elif now - at < FIRING_FOR + 2 * STEP:
                    depths[queue] = (0, 1)  # resolved: shown once, then the pod is gone
                else:
                    del started[queue]
                    s.store.queues.pop(queue, None)
            s.store.set_queue_depths(depths, {}, now)
            s.evaluate()
            s.sender.drain()
            if now >= next_housekeeping:
                s.housekeeping()
                next_housekeeping = now + maintenance.INTERVAL
                peak = max(peak, db_bytes(path))
                for table in rows:
                    n = s.db.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
                    rows[table] = max(rows[table], n)
            clock.advance(STEP)
    finally:
        s.db.close()

    firing = [n for n in pager.sent if n.status == "firing"]
    resolved = [n for n in pager.sent if n.status == "resolved"]
    assert len({n.group_key for n in firing}) == GROUPS  # every group paged, once
    assert len(firing) == GROUPS
    assert len(resolved) == GROUPS
    size = db_bytes(path)
    print(f"soak: {GROUPS} groups over {DAYS} days: peak {peak} bytes, final {size} bytes")
    assert peak < BOUND and size < BOUND
    print(f"soak: most rows at once: {rows}")
    per_day = GROUPS / DAYS
    # One day of notification log (the retention for a 4h repeat_interval), five of silences,
    # each plus one maintenance interval's worth; the alert book keeps resolved alerts 15m.
    slack = per_day * 3600 / DAY + 1  # a maintenance interval and an incident, rounded up
    assert rows["nflog"] <= per_day * maintenance.NFLOG_MIN_RETENTION / DAY + slack
    silences_per_day = per_day / SILENCE_EVERY
    assert rows["silences"] <= silences_per_day * maintenance.SILENCE_RETENTION / DAY + slack
    assert rows["alerts"] <= 20
    # One line per page (fire and resolve), kept a day, plus a maintenance interval's worth.
    assert rows["notification_history"] <= 2 * (per_day + slack)
    with sqlite3.connect(path) as conn:  # and the file itself says the same
        assert conn.execute("SELECT COUNT(*) FROM nflog").fetchone()[0] <= rows["nflog"]
