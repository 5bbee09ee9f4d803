"""The daemon's side of periodic_task: what it writes for the next run, and when."""

from __future__ import annotations

from pathlib import Path

from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from tests.helpers import T0


def config(tmp_path: Path) -> str:
    return f"""
celery: {{broker_url: "memory://"}}
storage: {{path: "{tmp_path / "s.db"}"}}
rules:
  - {{name: BeatMissed, kind: periodic_task, tasks: [app.tick], every: 10s, grace: 0s}}
"""


def checked(s: Sentinel) -> float:
    assert s.db is not None
    [row] = s.db.query("SELECT checked_at FROM periodic_tasks")
    return float(row["checked_at"])


def test_written_when_seen_when_overdue_and_once_a_minute(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    s = Sentinel(parse(config(tmp_path), env={}), clock)
    s.store.started_at = T0
    s.store.periodic.saw("app.tick", True, T0)
    for at, written in [
        (1, 1),  # first sight
        (2, 1),  # nothing new
        (11, 11),  # became overdue: the next run must know it was watched past the deadline
        (30, 11),
        (72, 72),  # a minute since the last write
    ]:
        clock.advance(T0 + at - clock.now())
        s.evaluate()
        assert checked(s) == T0 + written, at
    clock.advance(3)
    s.stop()  # a clean stop writes how long this run watched
    again = Sentinel(parse(config(tmp_path), env={}), clock)
    assert again.store.periodic.remembered["app.tick"].checked_at == T0 + 75
    assert again.db is not None
    again.db.close()
