"""The repositories' contract, over every storage engine: SQLite and a real PostgreSQL (a schema
of each test's own in the run's fresh database). What the pipeline and the sender rely on is
checked here once, for both."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sentinel.alerts.repo import SqlAlertRepo
from sentinel.db import schema
from sentinel.db.engine import Engine
from sentinel.model import Alert, Labels, State
from sentinel.notify.history import Attempt, SqlNotificationHistory, refs
from sentinel.notify.matchers import Matcher
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.outbox import Outbox
from sentinel.notify.silence import Silence
from sentinel.notify.silence.repo import SqlSilenceRepo
from tests.helpers import T0


def alert(name: str = "QueueBacklog", at: float = 0.0, **labels: str) -> Alert:
    return Alert(
        rule=name,
        labels=Labels({"alertname": name, "severity": "warning", **labels}),
        annotations={"summary": f"{name} {labels}"},
        state=State.FIRING,
        active_at=T0 + at,
        value=1500.25,
        threshold=1000.0,
        fired_at=T0 + at,
        updated_at=T0 + at,
    )


def put(engine: Engine, group: str = "g", channel: str = "hook", *, firing=("a",), at=0.0):  # type: ignore[no-untyped-def]
    with engine.transaction() as tx:
        Outbox.put(
            tx,
            group_key=group,
            channel=channel,
            group_labels=Labels({"alertname": "X"}),
            status="firing" if firing else "resolved",
            alerts=[alert(queue=f) for f in firing],
            firing=list(firing),
            resolved=[],
            reason="new",
            now=T0 + at,
        )


def test_every_migration_applies(engine: Engine) -> None:
    versions = [s.version for s in schema.steps(engine.dialect)]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert engine.query("SELECT COUNT(*) AS n FROM ha_lease")[0]["n"] == 0


def test_alert_state_round_trips(engine: Engine) -> None:
    repo = SqlAlertRepo(engine)
    a, b = alert(queue="q1"), alert(queue="q2", at=5)
    repo.save([a, b], [])
    assert repo.load() == {a.fingerprint: a, b.fingerprint: b}
    resolved = replace(a, state=State.RESOLVED, resolved_at=T0 + 9, updated_at=T0 + 9)
    repo.save([resolved], [b.fingerprint])
    assert repo.load() == {a.fingerprint: resolved}
    assert repo.load()[a.fingerprint].active_at == T0  # a full-precision timestamp


def test_nflog_records_overwrites_and_prunes(engine: Engine) -> None:
    log = NotificationLog(engine)
    assert log.get("g", "hook") is None
    with engine.transaction() as tx:
        NotificationLog.record(tx, "g", "hook", ["b", "a"], [], T0, {"ts": "1.2"})
        NotificationLog.record(tx, "old", "hook", ["a"], [], T0 - 900, {})
        NotificationLog.record(tx, "live", "hook", ["a"], [], T0 - 900, {})
    entry = log.get("g", "hook")
    assert entry is not None
    assert (entry.firing, entry.resolved, entry.sent_at, entry.memo) == (
        frozenset({"a", "b"}),
        frozenset(),
        T0,
        {"ts": "1.2"},
    )
    with engine.transaction() as tx:
        NotificationLog.record(tx, "g", "hook", [], ["a"], T0 + 1, {})
        assert log.get("g", "hook", tx).resolved == frozenset({"a"})  # type: ignore[union-attr]
    assert log.prune({"live"}, older_than=T0 - 1) == 1
    assert log.get("old", "hook") is None and log.get("live", "hook") is not None


def test_a_transaction_that_raises_leaves_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.transaction() as tx:
        NotificationLog.record(tx, "g", "hook", ["a"], [], T0, {})
        Outbox.cancel(tx, "other", "hook")
        raise RuntimeError("decided, then failed")
    assert NotificationLog(engine).get("g", "hook") is None
    put(engine, "other")
    assert Outbox(engine).group_keys() == {"other"}


def test_outbox_rewrites_one_row_per_group_and_channel(engine: Engine) -> None:
    outbox = Outbox(engine)
    put(engine, firing=("a",))
    put(engine, firing=("a",), at=5)  # the same message: no new version
    (row,) = outbox.all()
    assert (row.version, row.created_at) == (1, T0)
    put(engine, firing=("a", "b"), at=7)
    (row,) = outbox.all()
    assert (row.version, row.firing, row.next_attempt_at) == (2, ["a", "b"], T0 + 7)
    assert [a.labels["queue"] for a in row.alerts] == ["a", "b"]
    put(engine, channel="mail")
    assert outbox.count() == 2 and outbox.group_keys() == {"g"}


def test_outbox_due_order_filters_and_next_due(engine: Engine) -> None:
    outbox = Outbox(engine)
    put(engine, "late", at=9)
    put(engine, "early", at=1)
    put(engine, "mail", channel="mail", at=3)
    assert [r.group_key for r in outbox.due(T0 + 10)] == ["early", "mail", "late"]
    assert [r.group_key for r in outbox.due(T0 + 10, limit=1)] == ["early"]
    assert [r.group_key for r in outbox.due(T0 + 5, channel="hook")] == ["early"]
    assert [r.group_key for r in outbox.due(T0 + 10, exclude=("early",))] == ["mail", "late"]
    assert outbox.next_due(channel="hook") == T0 + 1
    assert outbox.next_due(channel="hook", exclude=("early",)) == T0 + 9
    assert outbox.next_due(channel="nobody") is None


def test_outbox_claim_delivery_and_retry(engine: Engine) -> None:
    outbox, log = Outbox(engine), NotificationLog(engine)
    put(engine)
    assert outbox.claim("g", "hook", T0 - 1) is None  # not due yet
    row = outbox.claim("g", "hook", T0 + 1)
    assert row is not None and row.sending_since == T0 + 1
    with engine.transaction() as tx:
        assert Outbox.cancel(tx, "g", "hook") == 0  # a send under way is not withdrawn
    outbox.retry_later(row, "503", T0 + 30)
    again = outbox.get("g", "hook")
    assert again is not None
    assert (again.attempts, again.last_error, again.sending_since) == (1, "503", None)
    assert outbox.next_due() == T0 + 30
    put(engine, at=10)  # the same message: the running backoff is kept
    assert outbox.next_due() == T0 + 30
    row = outbox.claim("g", "hook", T0 + 30)
    assert row is not None
    put(engine, firing=("a", "b"), at=31)  # a newer decision while sending
    outbox.delivered(row, {"ts": 1}, T0 + 32)
    left = outbox.get("g", "hook")
    assert left is not None and left.version == row.version + 1 and left.sending_since is None
    entry = log.get("g", "hook")
    assert entry is not None and entry.memo == {"ts": "1"} and entry.sent_at == T0
    outbox.give_up(left, "400")
    assert outbox.count() == 0


def test_cancel_withdraws_a_waiting_row(engine: Engine) -> None:
    put(engine)
    with engine.transaction() as tx:
        assert Outbox.cancel(tx, "g", "hook") == 1
    assert Outbox(engine).all() == []


def test_silences_save_list_and_expire(engine: Engine) -> None:
    repo = SqlSilenceRepo(engine)
    s = Silence(
        id="s1",
        matchers=(
            Matcher("alertname", "=~", "Idle.*"),
            Matcher("env", "!=", "dev"),
        ),
        starts_at=T0,
        ends_at=T0 + 60,
        created_by="ops",
        comment="deploy",
        updated_at=T0,
    )
    repo.save(s)
    repo.save(replace(s, id="s0", starts_at=T0 - 10, ends_at=T0 - 5))
    assert [x.id for x in repo.all()] == ["s0", "s1"]
    repo.save(replace(s, ends_at=T0 + 30, updated_at=T0 + 1))
    assert repo.all()[1] == replace(s, ends_at=T0 + 30, updated_at=T0 + 1)
    assert repo.delete_expired(T0) == 1
    assert [x.id for x in repo.all()] == ["s1"]


def test_reopening_migrates_nothing_twice(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    put(engine)
    if engine.dialect == "sqlite":
        from sentinel.db.sqlite import Database

        again: Engine = Database(tmp_path / "sentinel.db")
    else:
        from sentinel.db.postgres import PostgresDatabase

        again = PostgresDatabase(engine.url)  # type: ignore[attr-defined]
    try:
        assert Outbox(again).count() == 1
    finally:
        again.close()


def test_periodic_task_state_round_trips(engine: Engine) -> None:
    from sentinel.facts.periodic_repo import SqlPeriodicRepo

    repo = SqlPeriodicRepo(engine)
    repo.save([("reports.nightly", T0, True, T0 + 5), ("beat.tick", T0 - 1, False, T0)])
    repo.save([("reports.nightly", T0 + 60, False, T0 + 61)])
    kept = repo.load()
    assert set(kept) == {"reports.nightly", "beat.tick"}
    assert (kept["reports.nightly"].seen_at, kept["reports.nightly"].by_sent) == (T0 + 60, False)
    assert (kept["beat.tick"].seen_at, kept["beat.tick"].by_sent) == (T0 - 1, False)
    assert kept["reports.nightly"].checked_at == T0 + 61


def attempt(at: float, channel: str = "hook", name: str = "QueueBacklog", **kw) -> Attempt:  # type: ignore[no-untyped-def]
    alerts, more = refs([alert(name, queue="q1")])
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


def test_notification_history_lists_filters_and_pages(engine: Engine) -> None:
    # JSON is read by each engine's own functions: the alert filter is checked on both.
    history = SqlNotificationHistory(engine)
    history.record(attempt(T0, "hook"))
    history.record(attempt(T0 + 1, "pager", outcome="retry", error="503 Service Unavailable"))
    history.record(attempt(T0 + 2, "hook", name="IdleWorker"))
    assert [a.at for a in history.list()] == [T0 + 2, T0 + 1, T0]
    assert [a.channel for a in history.list(channel="pager")] == ["pager"]
    assert [a.at for a in history.list(alert="QueueBacklog")] == [T0 + 1, T0]
    fp = alert("IdleWorker", queue="q1").fingerprint
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


def test_notification_history_prunes_by_age_then_rows(engine: Engine) -> None:
    history = SqlNotificationHistory(engine)
    for i in range(10):
        history.record(attempt(T0 + i * 100))
    assert history.prune(older_than=T0 + 250, max_rows=1000) == 3
    assert history.count() == 7
    assert history.prune(older_than=0, max_rows=4) == 3
    assert [a.at for a in history.list()] == [T0 + i * 100 for i in (9, 8, 7, 6)]
