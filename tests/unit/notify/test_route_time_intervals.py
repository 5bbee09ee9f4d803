"""Routes with `mute_time_intervals` / `active_time_intervals`, through the dispatcher and the
sender with a fake clock: quiet inside (or outside) the window, paging at its edge, on the
wall clock of the interval's location across a DST change and a weekday boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sentinel.channels.base import Notification
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.pipeline import Dispatcher
from sentinel.notify.route import build_from
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silencer

CONFIG = """
time_intervals:
  - name: weekend-maintenance        # Saturday 22:00 to Sunday 03:00, Berlin wall clock
    time_intervals:
      - {weekdays: [saturday], times: [{start_time: "22:00", end_time: "24:00"}],
         location: Europe/Berlin}
      - {weekdays: [sunday], times: [{start_time: "00:00", end_time: "03:00"}],
         location: Europe/Berlin}
  - name: business-hours
    time_intervals:
      - {weekdays: ["monday:friday"], times: [{start_time: "09:00", end_time: "17:00"}],
         location: America/New_York}
route:
  channels: [pager]
  group_wait: 0s
  group_interval: 1m
  routes:
    - match: {team: db}
      mute_time_intervals: [weekend-maintenance]
    - match: {team: office}
      channels: [chat]
      active_time_intervals: [business-hours]
channels:
  pager: {type: log}
  chat: {type: log}
"""


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, Notification]] = []
        self.clock: FakeClock | None = None

    def send(self, notification: Notification) -> dict[str, str]:
        assert self.clock is not None
        self.sent.append((self.clock.now(), notification))
        return {}


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def firing(since: float, **labels: str) -> Alert:
    labels.setdefault("alertname", "QueueBacklog")
    return Alert("r", Labels(labels), {}, State.FIRING, since, 1.0, 0.0, fired_at=since)


def first_page(tmp_path: Path, alert: Alert, start: float, end: float) -> float | None:
    """Tick every 30 s from `start` to `end`; when the first notification went out."""
    config = parse(CONFIG, env={})
    clock = FakeClock(start)
    db = Database(tmp_path / "state.db")
    recorder = Recorder()
    recorder.clock = clock
    dispatcher = Dispatcher(build_from(config), config.channels, db, Silencer(None), Inhibitor(()))
    sender = Sender(db, config.channels, clock, notifiers={"pager": recorder, "chat": recorder})
    t = start
    while t <= end:
        clock.set(t)
        dispatcher.tick([alert], t)
        sender.drain()
        if recorder.sent:
            return recorder.sent[0][0]
        t += 30.0
    return None


def test_a_mute_interval_holds_the_page_to_its_end_across_the_dst_change(tmp_path: Path) -> None:
    # 2026-10-25 is the night Berlin leaves summer time: 03:00 CEST becomes 02:00 CET, so the
    # window that opened at 22:00 CEST (20:00 UTC) closes at 03:00 CET, 02:00 UTC: six hours.
    start = utc(2026, 10, 24, 20, 30)  # Saturday 22:30 in Berlin
    sent = first_page(tmp_path, firing(start, team="db"), start, utc(2026, 10, 25, 3, 0))
    assert sent is not None
    assert utc(2026, 10, 25, 2, 0) <= sent < utc(2026, 10, 25, 2, 2)


def test_outside_a_mute_interval_the_page_goes_at_once(tmp_path: Path) -> None:
    start = utc(2026, 10, 24, 19, 50)  # Saturday 21:50 in Berlin: before the window
    sent = first_page(tmp_path, firing(start, team="db"), start, start + 600)
    assert sent == start


def test_another_route_is_not_muted_by_it(tmp_path: Path) -> None:
    start = utc(2026, 10, 24, 21, 0)
    sent = first_page(tmp_path, firing(start, team="web"), start, start + 600)
    assert sent == start


def test_an_active_interval_holds_a_friday_evening_page_to_monday_morning(tmp_path: Path) -> None:
    start = utc(2026, 11, 6, 22, 10)  # Friday 17:10 in New York (EST, UTC-5)
    monday_9am = utc(2026, 11, 9, 14, 0)
    sent = first_page(tmp_path, firing(start, team="office"), start, monday_9am + 600)
    assert sent is not None
    assert monday_9am <= sent < monday_9am + 120


def test_inside_an_active_interval_the_page_goes_at_once(tmp_path: Path) -> None:
    start = utc(2026, 11, 6, 21, 50)  # Friday 16:50 in New York
    sent = first_page(tmp_path, firing(start, team="office"), start, start + 600)
    assert sent == start
