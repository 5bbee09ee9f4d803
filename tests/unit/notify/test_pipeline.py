"""The notification pipeline end to end on a real SQLite file: Dispatcher (route, group, timers,
mute, dedup, outbox) and Sender (delivery, retries), with a fake channel and a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sentinel.channels.base import Notification, Permanent, Retryable
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State, rfc3339
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.nflog import LogEntry, NotificationLog
from sentinel.notify.outbox import Outbox, OutboxRow
from sentinel.notify.pipeline import Dispatcher
from sentinel.notify.route import build
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silence, Silencer
from sentinel.notify.silence.repo import SqlSilenceRepo
from tests.helpers import T0

GROUP_WAIT, GROUP_INTERVAL, REPEAT = 30.0, 300.0, 4 * 3600.0

CONFIG = """
route:
  channels: [pager]
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - match: {team: quiet}
      channels: [quiet]
    - match: {team: both}
      channels: [pager, chat]
inhibit:
  - source: {alertname: NoLiveWorkers}
    target: {alertname: QueueBacklog}
    equal: [env]
channels:
  pager: {type: log}
  chat: {type: log}
  quiet: {type: log, send_resolved: false}
"""


class FakeNotifier:
    """Stands in for a channel's remote end: records what it is sent, or fails as told."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Notification] = []
        self.attempts = 0
        self.errors: list[Exception] = []  # raised one per send, in order
        self.always: Exception | None = None  # raised on every send while set
        self.during_send: Callable[[], None] | None = None  # runs once, mid-send

    def send(self, notification: Notification) -> dict[str, str]:
        self.attempts += 1
        if self.during_send is not None:
            hook, self.during_send = self.during_send, None
            hook()
        if self.errors:
            raise self.errors.pop(0)
        if self.always is not None:
            raise self.always
        self.sent.append(notification)
        return {"ts": f"{self.name}-{len(self.sent)}"}


class Harness:
    """One daemon's notification side: a Dispatcher and a Sender on one SQLite file."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        config = parse(CONFIG, env={})
        assert config.route is not None
        self.clock = clock
        self.db = Database(path)
        self.silencer = Silencer(SqlSilenceRepo(self.db))
        self.notifiers = {name: FakeNotifier(name) for name in config.channels}
        self.dispatcher = Dispatcher(
            build(config.route),
            config.channels,
            self.db,
            self.silencer,
            Inhibitor(config.inhibit),
        )
        self.sender = Sender(self.db, config.channels, clock, notifiers=self.notifiers)
        self.outbox = Outbox(self.db)
        self.nflog = NotificationLog(self.db)
        self._seen = dict.fromkeys(self.notifiers, 0)

    def at(self, offset: float, alerts: list[Alert], drain: bool = True) -> list[Notification]:
        """Move to T0+offset, tick once, deliver what is due; returns what was sent."""
        self.clock.set(T0 + offset)
        self.dispatcher.tick(alerts, self.clock.now())
        if drain:
            self.sender.drain()
        return self.new()

    def run(
        self, start: float, end: float, alerts: list[Alert], every: float = 15.0
    ) -> list[Notification]:
        """Tick every `every` seconds from T0+start to T0+end inclusive, as the daemon does."""
        out: list[Notification] = []
        t = start
        while t <= end:
            out += self.at(t, alerts)
            t += every
        return out

    def new(self) -> list[Notification]:
        out: list[Notification] = []
        for name, notifier in self.notifiers.items():
            out += notifier.sent[self._seen[name] :]
            self._seen[name] = len(notifier.sent)
        return out

    def rows(self) -> list[OutboxRow]:
        return self.outbox.all()

    def log(self, notification_or_row: Notification | OutboxRow) -> LogEntry | None:
        n = notification_or_row
        return self.nflog.get(n.group_key, n.channel)

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sentinel.db"


@pytest.fixture
def h(db_path: Path, clock: FakeClock) -> Iterator[Harness]:
    harness = Harness(db_path, clock)
    yield harness
    harness.close()


def firing(alertname: str = "QueueBacklog", at: float = 0.0, **labels: str) -> Alert:
    return Alert(
        rule=alertname,
        labels=Labels({"alertname": alertname, "severity": "warning", "env": "prod", **labels}),
        annotations={"summary": f"{alertname} {labels}"},
        state=State.FIRING,
        active_at=T0 + at,
        value=1500.0,
        threshold=1000.0,
        fired_at=T0 + at,
        updated_at=T0 + at,
    )


def resolve(alert: Alert, at: float) -> Alert:
    return replace(alert, state=State.RESOLVED, resolved_at=T0 + at, updated_at=T0 + at)


def fps(*alerts: Alert) -> frozenset[str]:
    return frozenset(a.fingerprint for a in alerts)


def decide(h: Harness, alerts: list[Alert]) -> None:
    """Tick through group_wait without delivering: the first decision sits in the outbox."""
    assert h.at(0, alerts, drain=False) == []
    assert h.at(GROUP_WAIT, alerts, drain=False) == []
    assert len(h.rows()) >= 1


# --- timers and grouping ---------------------------------------------------------------------


def test_group_wait_delays_the_first_notification(h: Harness) -> None:
    a = firing(queue="celery")
    assert h.at(0, [a]) == []
    assert h.at(15, [a]) == []
    assert h.at(GROUP_WAIT - 1, [a]) == []
    assert h.rows() == []  # nothing decided before group_wait either
    [sent] = h.at(GROUP_WAIT, [a])
    assert sent.channel == "pager"
    assert sent.status == "firing"
    assert sent.alerts == (a,)
    assert sent.group_labels == {"alertname": "QueueBacklog"}
    assert sent.memo == {}
    assert h.rows() == []
    entry = h.log(sent)
    assert entry is not None and entry.firing == fps(a) and entry.sent_at == T0 + GROUP_WAIT


def test_pending_alerts_are_not_notified_and_start_no_group_timer(h: Harness) -> None:
    a = firing(queue="celery", at=700)
    pending = replace(a, state=State.PENDING, fired_at=None)
    assert h.run(0, 699, [pending]) == []
    assert h.rows() == []
    # group_wait counts from when the alert fires, not from when it became pending.
    assert h.run(700, 700 + GROUP_WAIT - 1, [a]) == []
    [sent] = h.at(700 + GROUP_WAIT, [a])
    assert sent.alerts == (a,)


def test_one_notification_per_group(h: Harness) -> None:
    q1, q2 = firing(queue="q1"), firing(queue="q2")
    other = firing("TaskFailureRate", task="billing.charge")
    sent = h.run(0, GROUP_WAIT, [q1, q2, other])
    assert len(sent) == 2
    by_name = {n.group_labels["alertname"]: n for n in sent}
    assert fps(*by_name["QueueBacklog"].alerts) == fps(q1, q2)
    assert len(by_name["QueueBacklog"].alerts) == 2
    assert by_name["TaskFailureRate"].alerts == (other,)
    assert by_name["QueueBacklog"].group_key != by_name["TaskFailureRate"].group_key


def test_no_notification_per_evaluation(h: Harness) -> None:
    a = firing(queue="celery")
    sent = h.run(0, 3600, [a], every=15)  # 241 evaluations within the hour
    assert len(sent) == 1
    assert h.sender.outcomes[("pager", "success")] == 1


def test_a_new_alert_joining_a_group_waits_for_group_interval(h: Harness) -> None:
    a, b = firing(queue="q1"), firing(queue="q2", at=60)
    assert len(h.run(0, GROUP_WAIT, [a])) == 1
    assert h.run(60, GROUP_WAIT + GROUP_INTERVAL - 1, [a, b]) == []
    [sent] = h.at(GROUP_WAIT + GROUP_INTERVAL, [a, b])
    assert fps(*sent.alerts) == fps(a, b)
    assert sent.memo == {"ts": "pager-1"}  # what the channel returned for the first message
    assert h.run(GROUP_WAIT + GROUP_INTERVAL + 15, 3600, [a, b]) == []


def test_repeat_after_repeat_interval(h: Harness) -> None:
    a = firing(queue="celery")
    assert len(h.run(0, GROUP_WAIT, [a])) == 1
    assert h.run(GROUP_WAIT + 15, GROUP_WAIT + REPEAT - 1, [a]) == []
    # The reminder goes out at the first group flush once repeat_interval has passed.
    [reminder] = h.run(GROUP_WAIT + REPEAT, GROUP_WAIT + REPEAT + GROUP_INTERVAL, [a])
    assert reminder.status == "firing" and reminder.alerts == (a,)
    assert h.run(GROUP_WAIT + REPEAT + GROUP_INTERVAL + 15, REPEAT * 2 - GROUP_INTERVAL, [a]) == []


def test_resolve_is_sent_once(h: Harness) -> None:
    a = firing(queue="celery")
    [page] = h.run(0, 99, [a])
    r = resolve(a, 100)
    # The book keeps a resolved alert for a while, then drops it.
    [sent] = h.run(100, 1000, [r])
    assert sent.status == "resolved"
    assert sent.alerts == (r,)
    assert sent.group_key == page.group_key
    assert sent.memo == {"ts": "pager-1"}  # lets Slack update the page, email thread under it
    assert h.run(1015, 2 * 3600, [], every=60) == []
    entry = h.log(sent)
    assert entry is not None and entry.firing == frozenset() and entry.resolved == fps(r)


def test_fired_and_resolved_within_group_wait_is_never_sent(h: Harness) -> None:
    a = firing(queue="celery")
    assert h.at(0, [a]) == []
    r = resolve(a, 10)
    assert h.run(10, 1000, [r]) == []
    assert h.rows() == []


@pytest.mark.parametrize(
    "refire_at",
    [
        pytest.param(400, id="while the resolved alert is still in its group"),
        pytest.param(1100, id="after the resolved alert was dropped"),
    ],
)
def test_send_resolved_false(h: Harness, refire_at: float) -> None:
    a = firing(queue="celery", team="quiet")
    [page] = h.run(0, 99, [a])
    assert page.channel == "quiet"
    r = resolve(a, 100)
    until = min(refire_at, 1000) - 1
    assert h.run(100, until, [r]) == []
    assert h.notifiers["quiet"].attempts == 1  # the channel was not contacted for the resolve
    assert h.rows() == []
    entry = h.log(page)
    assert entry is not None and entry.firing == frozenset()  # the log forgot the firing set
    if refire_at > 1000:
        assert h.run(1000, refire_at - 1, [], every=60) == []
    again = firing(queue="celery", team="quiet", at=refire_at)
    [sent] = h.run(refire_at, refire_at + GROUP_INTERVAL, [again])
    assert sent.status == "firing"
    assert sent.alerts == (again,)


def test_send_resolved_false_partial_resolve_sends_nothing(h: Harness) -> None:
    a, b = firing(queue="q1", team="quiet"), firing(queue="q2", team="quiet")
    assert len(h.run(0, 99, [a, b])) == 1
    assert h.run(100, 2000, [a, resolve(b, 100)]) == []


def test_sender_honours_send_resolved_as_configured_when_it_delivers(
    h: Harness, clock: FakeClock
) -> None:
    """A reload can turn send_resolved off between deciding and delivering: resolved alerts
    are then left out, and an all-resolved row is recorded without contacting the channel."""
    a, b = firing(queue="q1"), firing(queue="q2")
    assert len(h.run(0, GROUP_WAIT, [a, b])) == 1
    h.at(GROUP_WAIT + GROUP_INTERVAL, [a, resolve(b, 100)], drain=False)
    [row] = h.rows()
    assert {x.fingerprint for x in row.alerts} == fps(a, b)  # decided with send_resolved on

    reloaded = parse(
        CONFIG.replace("pager: {type: log}", "pager: {type: log, send_resolved: false}"), env={}
    )
    sender = Sender(h.db, reloaded.channels, clock, notifiers=h.notifiers)
    assert sender.drain() == 1
    [partial] = h.new()
    assert partial.alerts == (a,)

    h.at(GROUP_WAIT + 2 * GROUP_INTERVAL, [resolve(a, 400), resolve(b, 100)], drain=False)
    [row] = h.rows()
    assert row.status == "resolved"
    attempts = h.notifiers["pager"].attempts
    assert sender.drain() == 0
    assert h.notifiers["pager"].attempts == attempts  # not contacted
    assert h.rows() == []
    entry = h.log(row)
    assert entry is not None and entry.firing == frozenset()
    assert entry.memo == {"ts": "pager-2"}  # the memo of the last real message is kept


# --- muting ----------------------------------------------------------------------------------


def silence(h: Harness, *matchers: tuple[str, str], at: float) -> Silence:
    body = {
        "matchers": [{"name": k, "value": v, "isRegex": False} for k, v in matchers],
        "endsAt": rfc3339(T0 + 86400),
        "createdBy": "test",
    }
    return h.silencer.put(Silence.from_api(body, T0 + at))


def test_silenced_alert_is_not_sent_but_another_group_is(h: Harness) -> None:
    s = silence(h, ("alertname", "QueueBacklog"), at=-60)  # made before the alert exists
    backlog = firing(queue="celery")
    failures = firing("TaskFailureRate", task="billing.charge")
    sent = h.run(0, 599, [backlog, failures])
    assert [n.alerts for n in sent] == [(failures,)]
    assert h.rows() == []
    # Expiring the silence lets the next flush of the group through.
    h.silencer.expire(s.id, T0 + 600)
    [late] = h.run(600, 600 + GROUP_INTERVAL, [backlog, failures])
    assert late.alerts == (backlog,)


def test_silenced_alert_is_left_out_of_its_group(h: Harness) -> None:
    silence(h, ("queue", "q1"), at=0)
    q1, q2 = firing(queue="q1"), firing(queue="q2")
    [sent] = h.run(0, 600, [q1, q2])
    assert sent.alerts == (q2,)
    entry = h.log(sent)
    assert entry is not None and entry.firing == fps(q2)


def test_silenced_alert_page_still_failing_is_cancelled(h: Harness) -> None:
    h.notifiers["pager"].always = Retryable("connection refused")
    a = firing(queue="celery")
    assert h.run(0, 100, [a]) == []
    assert len(h.rows()) == 1
    silence(h, ("queue", "celery"), at=100)
    # Retries of the decided page go on until the group's next flush sees the silence.
    assert h.run(115, GROUP_WAIT + GROUP_INTERVAL - 1, [a]) == []
    assert len(h.rows()) == 1
    assert h.at(GROUP_WAIT + GROUP_INTERVAL, [a]) == []
    assert h.rows() == []
    h.notifiers["pager"].always = None
    assert h.run(GROUP_WAIT + GROUP_INTERVAL + 15, 2000, [a]) == []


def test_inhibited_alert_is_not_sent(h: Harness) -> None:
    down = firing("NoLiveWorkers", severity="critical")
    prod = firing(queue="celery")  # env=prod, like the source
    staging = firing(queue="celery", env="staging")
    sent = h.run(0, 600, [down, prod, staging])
    by_name = {n.group_labels["alertname"]: n.alerts for n in sent}
    assert by_name == {"NoLiveWorkers": (down,), "QueueBacklog": (staging,)}


def test_pending_source_does_not_inhibit(h: Harness) -> None:
    down = replace(firing("NoLiveWorkers", severity="critical"), state=State.PENDING)
    prod = firing(queue="celery")
    [sent] = h.run(0, 600, [down, prod])
    assert sent.alerts == (prod,)


# --- delivery --------------------------------------------------------------------------------


def test_retryable_keeps_the_row_and_honours_retry_after(h: Harness) -> None:
    pager = h.notifiers["pager"]
    pager.errors = [Retryable("429 rate limited", retry_after=120)]
    a = firing(queue="celery")
    assert h.run(0, GROUP_WAIT, [a]) == []
    [row] = h.rows()
    assert row.attempts == 1
    assert row.next_attempt_at == T0 + GROUP_WAIT + 120
    assert row.last_error == "429 rate limited"
    assert h.sender.outcomes[("pager", "retry")] == 1
    assert h.log(row) is None  # nothing recorded until it is delivered
    assert h.run(GROUP_WAIT + 15, GROUP_WAIT + 119, [a]) == []
    assert pager.attempts == 1  # not tried again before it is due
    [sent] = h.at(GROUP_WAIT + 120, [a])
    assert sent.alerts == (a,)
    assert h.rows() == []
    assert h.sender.outcomes[("pager", "success")] == 1
    assert h.run(GROUP_WAIT + 135, 3600, [a]) == []


def test_retryable_without_retry_after_backs_off_exponentially(h: Harness) -> None:
    pager = h.notifiers["pager"]
    pager.always = Retryable("503")
    a = firing(queue="celery")
    decide(h, [a])
    delays = []
    for attempts in range(1, 6):
        h.sender.drain()
        [row] = h.rows()
        assert row.attempts == attempts
        delays.append(row.next_attempt_at - h.clock.now())
        h.clock.set(row.next_attempt_at)
    for n, delay in enumerate(delays):
        assert 2**n / 2 - 1e-6 <= delay <= 2**n + 1e-6  # jitter in [d/2, d], d doubling from 1 s
    assert pager.sent == []


def test_permanent_drops_the_row_and_is_counted(h: Harness) -> None:
    pager = h.notifiers["pager"]
    pager.errors = [Permanent("invalid_auth")]
    a = firing(queue="celery")
    assert h.run(0, GROUP_WAIT, [a]) == []
    assert h.rows() == []
    assert h.sender.outcomes[("pager", "failed")] == 1
    assert pager.attempts == 1
    [key] = h.dispatcher.groups
    assert h.nflog.get(key, "pager") is None
    # Nothing was recorded, so the next group flush decides afresh.
    assert h.run(GROUP_WAIT + 15, GROUP_WAIT + GROUP_INTERVAL - 1, [a]) == []
    [sent] = h.at(GROUP_WAIT + GROUP_INTERVAL, [a])
    assert sent.alerts == (a,)


def test_channels_deliver_independently(h: Harness) -> None:
    h.notifiers["pager"].always = Retryable("pager down")
    a = firing(queue="celery", team="both")
    sent = h.run(0, 120, [a])
    assert [n.channel for n in sent] == ["chat"]
    [row] = h.rows()
    assert row.channel == "pager" and row.attempts >= 1


def test_resolving_while_the_page_is_failing_cancels_it(h: Harness) -> None:
    pager = h.notifiers["pager"]
    pager.always = Retryable("connection refused")
    a = firing(queue="celery")
    assert h.run(0, 99, [a]) == []
    r = resolve(a, 100)
    assert h.run(100, GROUP_WAIT + GROUP_INTERVAL - 1, [r]) == []
    assert len(h.rows()) == 1  # still trying until the group decides again
    tries = pager.attempts
    assert tries > 1
    assert h.at(GROUP_WAIT + GROUP_INTERVAL, [r]) == []
    assert h.rows() == []  # cancelled by the flush that saw the resolve
    assert pager.attempts == tries  # and not tried again
    pager.always = None
    assert h.run(GROUP_WAIT + GROUP_INTERVAL + 15, 2000, [r]) == []
    assert h.run(2015, 4000, [], every=60) == []
    assert pager.sent == []


# --- restarts --------------------------------------------------------------------------------


def test_restart_after_a_delivered_page_does_not_repage(db_path: Path, clock: FakeClock) -> None:
    a = firing(queue="celery")
    first = Harness(db_path, clock)
    [page] = first.run(0, 60, [a])
    first.close()

    second = Harness(db_path, clock)
    assert second.run(75, REPEAT - GROUP_INTERVAL, [a], every=60) == []
    # ...nor forgets it: the resolve still goes out, threaded on the first daemon's message.
    r = resolve(a, REPEAT - 200)
    [sent] = second.run(REPEAT - 200, REPEAT + 200, [r])
    assert sent.status == "resolved" and sent.group_key == page.group_key
    assert sent.memo == {"ts": "pager-1"}
    second.close()


def test_restart_delivers_a_decided_but_unsent_row(db_path: Path, clock: FakeClock) -> None:
    a = firing(queue="celery")
    first = Harness(db_path, clock)
    decide(first, [a])  # decided, then the process died before sending
    assert len(first.rows()) == 1
    first.close()

    clock.set(T0 + GROUP_WAIT + 5)
    second = Harness(db_path, clock)
    assert second.sender.drain() == 1
    [sent] = second.new()
    assert sent.alerts == (a,)
    assert second.rows() == []
    assert second.run(GROUP_WAIT + 15, 3600, [a]) == []  # and only once
    second.close()


def test_restart_keeps_retrying_a_failing_row(db_path: Path, clock: FakeClock) -> None:
    a = firing(queue="celery")
    first = Harness(db_path, clock)
    first.notifiers["pager"].errors = [Retryable("503", retry_after=60)]
    assert first.run(0, GROUP_WAIT, [a]) == []
    first.close()

    second = Harness(db_path, clock)
    assert second.run(GROUP_WAIT + 15, GROUP_WAIT + 59, [a]) == []
    [sent] = second.run(GROUP_WAIT + 60, 3600, [a])
    assert sent.alerts == (a,)
    second.close()


# --- the version guard -----------------------------------------------------------------------


@pytest.mark.parametrize("stale_outcome", ["success", "permanent"])
def test_a_row_updated_in_flight_is_not_deleted_by_the_stale_delivery(
    h: Harness, stale_outcome: str
) -> None:
    pager = h.notifiers["pager"]
    a, b = firing(queue="q1"), firing(queue="q2")
    decide(h, [a])
    [v1] = h.rows()

    def new_decision() -> None:  # the dispatcher ticks while the send is in flight
        h.dispatcher.tick([a, b], h.clock.now())

    h.clock.set(T0 + GROUP_WAIT + GROUP_INTERVAL)
    pager.during_send = new_decision
    if stale_outcome == "permanent":
        pager.errors = [Permanent("400")]
    h.sender.drain()
    [v2] = h.rows()
    assert v2.id == v1.id and v2.version == v1.version + 1
    assert set(v2.firing) == fps(a, b)
    if stale_outcome == "success":
        [stale] = h.new()
        assert stale.alerts == (a,)
        entry = h.log(v2)
        assert entry is not None and entry.firing == fps(a)
    else:
        assert h.new() == []
    h.sender.drain()
    [fresh] = h.new()
    assert fps(*fresh.alerts) == fps(a, b)
    assert h.rows() == []
    entry = h.log(fresh)
    assert entry is not None and entry.firing == fps(a, b)


def test_an_identical_decision_in_flight_is_not_sent_twice(h: Harness) -> None:
    pager = h.notifiers["pager"]
    a = firing(queue="celery")
    decide(h, [a])
    h.clock.set(T0 + GROUP_WAIT + GROUP_INTERVAL)
    pager.during_send = lambda: h.dispatcher.tick([a], h.clock.now())
    h.sender.drain()
    assert len(h.new()) == 1
    assert h.rows() == []
    assert h.run(GROUP_WAIT + GROUP_INTERVAL + 15, 3600, [a]) == []


def test_end_of_a_silence_is_not_a_new_page(h: Harness) -> None:
    a = firing(queue="celery")
    [page] = h.run(0, GROUP_WAIT, [a])
    assert page.status == "firing"
    s = silence(h, ("queue", "celery"), at=GROUP_WAIT + 1)
    # While muted nothing is said, and the log still knows the channel was paged.
    assert h.run(GROUP_WAIT + 15, 3000, [a]) == []
    assert h.log(page) is not None and h.log(page).firing == fps(a)
    h.silencer.expire(s.id, T0 + 3001)
    # Still firing, same alert, well within repeat_interval: no page.
    assert h.run(3015, 6000, [a]) == []
    # The reminder comes on the repeat schedule of the original page.
    [reminder] = h.run(6015, REPEAT + GROUP_WAIT + GROUP_INTERVAL, [a])
    assert reminder.alerts == (a,)


# --- group lifecycle (Alertmanager's: a group that is done with its alerts ends) ---------------


def test_group_ends_once_its_resolve_is_delivered(h: Harness) -> None:
    a = firing(queue="celery")
    [page] = h.run(0, 99, [a])
    r = resolve(a, 100)
    assert h.run(100, GROUP_WAIT + GROUP_INTERVAL - 1, [r]) == []
    [sent] = h.at(GROUP_WAIT + GROUP_INTERVAL, [r])
    assert sent.status == "resolved"
    assert page.group_key in h.dispatcher.groups  # the flush queued it; delivered since
    assert h.at(GROUP_WAIT + GROUP_INTERVAL + 1, [r]) == []
    assert h.dispatcher.groups == {}
    # The book still shows the resolved alert for a while: it starts no group again.
    assert h.run(GROUP_WAIT + GROUP_INTERVAL + 30, 1000, [r]) == []
    assert h.dispatcher.groups == {}


def test_a_resolve_still_failing_keeps_its_group(h: Harness) -> None:
    a = firing(queue="celery")
    h.run(0, 99, [a])
    r = resolve(a, 100)
    h.notifiers["pager"].always = Retryable("connection refused")
    assert h.run(100, GROUP_WAIT + GROUP_INTERVAL + 60, [r]) == []
    assert len(h.dispatcher.groups) == 1
    h.notifiers["pager"].always = None
    h.clock.set(T0 + 2000)
    h.sender.drain()
    [sent] = h.new()
    assert sent.status == "resolved"
    h.at(2015, [r])
    assert h.dispatcher.groups == {}


def test_refire_after_a_delivered_resolve_starts_a_new_group_with_group_wait(
    h: Harness,
) -> None:
    a = firing(queue="celery")
    h.run(0, 99, [a])
    r = resolve(a, 100)
    assert len(h.run(100, GROUP_WAIT + GROUP_INTERVAL, [r], every=10)) == 1
    h.at(GROUP_WAIT + GROUP_INTERVAL + 10, [r])
    assert h.dispatcher.groups == {}
    again = firing(queue="celery", at=400)
    # Not at the old group's next tick (30 + 2 x 300 = 630): group_wait after it fires.
    assert h.run(400, 400 + GROUP_WAIT - 1, [again]) == []
    [page] = h.at(400 + GROUP_WAIT, [again])
    assert page.status == "firing" and page.alerts == (again,)
    # ...and then group_interval, from the new group's first flush.
    b = firing(queue="other", at=450)
    assert h.run(445, 400 + GROUP_WAIT + GROUP_INTERVAL - 1, [again, b]) == []
    [update] = h.at(400 + GROUP_WAIT + GROUP_INTERVAL, [again, b])
    assert fps(*update.alerts) == fps(again, b)


def test_resolved_before_anything_was_sent_then_refire_starts_a_new_group(h: Harness) -> None:
    a = firing(queue="celery")
    assert h.at(0, [a]) == []
    r = resolve(a, 5)
    assert h.run(5, GROUP_WAIT, [r], every=5) == []  # the flush at 30 had nothing to say
    assert h.dispatcher.groups == {}
    again = firing(queue="celery", at=35)
    assert h.run(35, 35 + GROUP_WAIT - 1, [again]) == []
    [page] = h.at(35 + GROUP_WAIT, [again])
    assert page.status == "firing" and page.alerts == (again,)


def test_refire_while_the_resolve_waits_for_group_interval_is_the_same_incident(
    h: Harness,
) -> None:
    a = firing(queue="celery")
    [page] = h.run(0, 99, [a])
    r = resolve(a, 100)
    assert h.run(100, 199, [r]) == []
    again = firing(queue="celery", at=200)
    # Same group, same alert firing at its next flush as at the last one: nothing to say.
    assert h.run(200, 3000, [again]) == []
    entry = h.log(page)
    assert entry is not None and entry.firing == fps(a)


def test_restart_with_a_delivered_resolve_in_the_book_sends_nothing(
    db_path: Path, clock: FakeClock
) -> None:
    a = firing(queue="celery")
    first = Harness(db_path, clock)
    first.run(0, 99, [a])
    r = resolve(a, 100)
    assert len(first.run(100, 350, [r], every=10)) == 1
    assert first.dispatcher.groups == {}
    first.close()

    second = Harness(db_path, clock)
    assert second.run(360, 1000, [r]) == []
    assert second.dispatcher.groups == {}
    second.close()


def reload(h: Harness, text: str = CONFIG) -> None:
    config = parse(text, env={})
    assert config.route is not None
    h.dispatcher.reconfigure(build(config.route), config.channels, Inhibitor(config.inhibit))


def test_reload_keeps_the_timers_of_unchanged_groups(h: Harness) -> None:
    a, b = firing(queue="q1"), firing(queue="q2", at=60)
    assert len(h.run(0, GROUP_WAIT, [a])) == 1
    [group] = h.dispatcher.groups.values()
    due = group.next_flush
    assert h.run(60, 120, [a, b]) == []
    reload(h)
    assert h.dispatcher.groups[group.key].next_flush == due
    # b still goes out on the group's own tick: not earlier (a fresh group_wait), nor later.
    assert h.run(135, GROUP_WAIT + GROUP_INTERVAL - 1, [a, b]) == []
    [sent] = h.at(GROUP_WAIT + GROUP_INTERVAL, [a, b])
    assert fps(*sent.alerts) == fps(a, b)


def test_reload_restarts_the_groups_whose_route_changed(h: Harness) -> None:
    a = firing(queue="q1")
    quiet = firing(queue="q1", team="quiet")
    assert len(h.run(0, GROUP_WAIT, [a, quiet])) == 2
    reload(h, CONFIG.replace("channels: [quiet]", "channels: [quiet, chat]"))
    assert [g.route.key for g in h.dispatcher.groups.values()] == ["{}"]
