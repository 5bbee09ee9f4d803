"""The notification history: what the sender records per attempt, the filters, and the
retention (age, then rows) that the maintenance job enforces."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.clock import FakeClock
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State
from sentinel.notify import maintenance
from sentinel.notify.history import MAX_ALERTS_PER_ROW, Attempt, SqlNotificationHistory, refs
from sentinel.notify.silence import Silencer
from tests.helpers import T0


@pytest.fixture
def history(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = Database(tmp_path / "s.db")
    yield SqlNotificationHistory(db)
    db.close()


def alert(name: str, queue: str) -> Alert:
    labels = Labels(alertname=name, severity="warning", queue=queue)
    return Alert(name, labels, {}, State.FIRING, T0, 5.0, 1.0, fired_at=T0)


def attempt(at: float, channel: str = "hook", name: str = "QueueBacklog", **kw) -> Attempt:  # type: ignore[no-untyped-def]
    alerts, more = refs([alert(name, "q1")])
    fields = {
        "at": at,
        "channel": channel,
        "group_key": "{}:{alertname=QueueBacklog}",
        "group_labels": Labels(alertname=name),
        "status": "firing",
        "alerts": alerts,
        "more_alerts": more,
        "attempt": 1,
        "outcome": "success",
    }
    fields.update(kw)
    return Attempt(**fields)  # type: ignore[arg-type]


def test_newest_first_with_filters_by_channel_and_alert(history) -> None:  # type: ignore[no-untyped-def]
    history.record(attempt(T0, "hook"))
    history.record(attempt(T0 + 1, "pager", outcome="retry", error="503 Service Unavailable"))
    history.record(attempt(T0 + 2, "hook", name="IdleWorker"))
    assert [a.at for a in history.list()] == [T0 + 2, T0 + 1, T0]
    assert [a.channel for a in history.list(channel="pager")] == ["pager"]
    assert [a.at for a in history.list(alert="QueueBacklog")] == [T0 + 1, T0]
    fp = alert("IdleWorker", "q1").fingerprint
    assert [a.at for a in history.list(alert=fp)] == [T0 + 2]
    retry = history.list(channel="pager")[0]
    assert (retry.outcome, retry.error, retry.alerts[0].alertname) == (
        "retry",
        "503 Service Unavailable",
        "QueueBacklog",
    )
    newest = history.list(limit=1)[0]
    assert [a.at for a in history.list(before=newest.id)] == [T0 + 1, T0]
    assert history.channels() == ["hook", "pager"]


def test_a_huge_group_lists_its_first_alerts_and_counts_the_rest() -> None:
    alerts, more = refs([alert("Q", f"q{i}") for i in range(MAX_ALERTS_PER_ROW + 7)])
    assert (len(alerts), more) == (MAX_ALERTS_PER_ROW, 7)


def test_prune_drops_rows_past_the_age_then_past_the_row_cap(history) -> None:  # type: ignore[no-untyped-def]
    for i in range(10):
        history.record(attempt(T0 + i * 100))
    assert history.prune(older_than=T0 + 250, max_rows=1000) == 3  # T0, +100, +200
    assert history.count() == 7
    assert history.prune(older_than=0, max_rows=4) == 3
    assert [a.at for a in history.list()] == [T0 + i * 100 for i in (9, 8, 7, 6)]
    assert history.prune(older_than=0, max_rows=4) == 0


def test_the_maintenance_job_enforces_the_configured_retention(history) -> None:  # type: ignore[no-untyped-def]
    from sentinel.notify.nflog import NotificationLog

    clock = FakeClock(T0 + 10 * 86400)
    for day in range(10):
        history.record(attempt(T0 + day * 86400))
    job = maintenance.Maintenance(
        NotificationLog(history.db),
        Silencer(None),
        retention=lambda: 86400.0,
        live_groups=list,
        history=history,
        history_bounds=lambda: maintenance.HistoryBounds(keep=3 * 86400, max_rows=2),
    )
    pruned = job.run(clock.now())
    assert pruned.history == 8 and history.count() == 2
    assert job.pruned_total.history == 8


def test_the_sender_records_each_attempt_and_its_outcome(tmp_path: Path) -> None:
    from sentinel.channels.base import Permanent, Retryable
    from tests.unit.notify.harness import GROUP_WAIT, Harness, firing

    h = Harness(tmp_path / "s.db", FakeClock(T0))
    try:
        a = firing("QueueBacklog", queue="q1")
        channel = next(iter(h.notifiers))
        notifier = h.notifiers[channel]
        notifier.errors = [Retryable("503 Service Unavailable")]
        h.at(0, [a])
        h.at(GROUP_WAIT, [a])  # first attempt: 503, retried later
        h.clock.advance(3600)
        h.sender.drain()  # second attempt: delivered
        rows = h.sender.history.list(channel=channel)
        assert [(r.attempt, r.outcome, r.error) for r in rows] == [
            (2, "success", None),
            (1, "retry", "503 Service Unavailable"),
        ]
        assert rows[0].status == "firing" and rows[0].alerts[0].fingerprint == a.fingerprint
        notifier.always = Permanent("400 invalid_auth")
        h.at(GROUP_WAIT + 3 * 3600 * 24, [a])  # a reminder, refused for good
        assert h.sender.history.list(channel=channel, limit=1)[0].outcome == "failed"
    finally:
        h.db.close()
