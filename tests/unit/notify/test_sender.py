"""The Sender's channel loops with real threads: a slow receiver holds up only the groups it is
answering, one group's sends stay in order, and a newer decision never jumps another group's
queue. A fake clock decides what is due; the fake channel blocks until the test releases it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from sentinel.channels.base import Notification, Retryable
from sentinel.clock import FakeClock
from sentinel.model import Alert
from sentinel.notify.sender import Sender
from tests.helpers import T0, wait_for
from tests.unit.notify.harness import GROUP_INTERVAL, GROUP_WAIT, Harness, firing, resolve

# Generous: these only bound a wait for threads on a busy machine, they assert no timing.
WAIT = 20.0


@dataclass
class Call:
    notification: Notification
    release: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class GatedNotifier:
    """A channel whose every send waits until the test releases it (or `open` is set).

    Records the calls in arrival order and the most sends it saw at once, overall and per group.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.open = threading.Event()
        self.errors: dict[str, list[Exception]] = {}  # group key -> raised in order
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most_at_once = 0
        self.most_per_group = 0

    def send(self, notification: Notification) -> dict[str, str]:
        call = Call(notification)
        key = notification.group_key
        with self.lock:
            self.calls.append(call)
            self.running[key] = self.running.get(key, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.running.values()))
            self.most_per_group = max(self.most_per_group, self.running[key])
        try:
            while not (call.release.is_set() or self.open.is_set()):
                call.release.wait(0.05)
            with self.lock:
                errors = self.errors.get(key)
                if errors:
                    raise errors.pop(0)
            return {"ts": str(len(self.calls))}
        finally:
            with self.lock:
                self.running[key] -= 1
            call.done.set()

    def call_for(self, alertname: str, n: int = 0) -> Call:
        """The n-th send for the group of this alertname, once it has arrived."""

        def find() -> Call | None:
            with self.lock:
                mine = [c for c in self.calls if alertname in c.notification.group_key]
            return mine[n] if len(mine) > n else None

        found = wait_for(find, WAIT, interval=0.01, message=f"send #{n} for {alertname}")
        assert isinstance(found, Call)
        return found

    def sent(self, alertname: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if alertname in c.notification.group_key]


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Harness, GatedNotifier]]:
    clock = FakeClock(T0)
    h = Harness(tmp_path / "sentinel.db", clock)
    pager = GatedNotifier()
    h.notifiers["pager"] = pager  # type: ignore[assignment]
    h.sender = Sender(h.db, h.sender.channels, clock, notifiers=h.notifiers)  # type: ignore[arg-type]
    yield h, pager
    pager.open.set()
    h.sender.stop(timeout=WAIT)
    h.close()


def with_cap(h: Harness, cap: int) -> None:
    channels = {
        name: c.model_copy(update={"max_in_flight": cap}) for name, c in h.sender.channels.items()
    }
    h.sender = Sender(h.db, channels, h.clock, notifiers=h.notifiers)


def decide_at(h: Harness, offset: float, alerts: list[Alert]) -> None:
    """The dispatcher ticks (a flush when a group's timer is due) and wakes the sender."""
    h.clock.set(T0 + offset)
    h.dispatcher.tick(alerts, h.clock.now())
    h.sender.wake()


def delivered(h: Harness, alertname: str) -> bool:
    return not any(alertname in r.group_key for r in h.rows())


A, B = "QueueBacklog", "TaskFailureRate"  # group_by [alertname]: two groups to `pager`


def test_a_blocked_send_does_not_hold_up_another_group(gated) -> None:
    h, pager = gated
    a, b = firing(A, queue="q1"), firing(B, task="t1")
    decide_at(h, 0, [a, b])
    decide_at(h, GROUP_WAIT, [a, b])
    h.sender.start()
    first = pager.call_for(A)
    assert not first.release.is_set()
    # A's receiver has not answered, and B's page goes out all the same.
    second = pager.call_for(B)
    second.release.set()
    wait_for(lambda: delivered(h, B), WAIT, message="B recorded")
    assert not first.done.is_set()
    entry = h.nflog.get(second.notification.group_key, "pager")
    assert entry is not None and entry.firing == frozenset({b.fingerprint})
    first.release.set()
    wait_for(lambda: delivered(h, A), WAIT, message="A recorded once released")
    assert h.sender.outcomes[("pager", "success")] == 2
    assert [n.notification.status for n in pager.calls] == ["firing", "firing"]


def test_one_groups_sends_stay_in_order_while_it_is_in_flight(gated) -> None:
    h, pager = gated
    a1, a2, b = firing(A, queue="q1"), firing(A, queue="q2"), firing(B, task="t1")
    decide_at(h, 0, [a1, b])
    decide_at(h, GROUP_WAIT, [a1, b])
    h.sender.start()
    page = pager.call_for(A)
    pager.call_for(B, 0).release.set()
    wait_for(lambda: delivered(h, B), WAIT, message="B's page recorded")
    # While A's page is in flight, A changes (a second alert joins) and B resolves.
    decide_at(h, GROUP_WAIT + GROUP_INTERVAL, [a1, a2, resolve(b, GROUP_WAIT + 1)])
    b_resolve = pager.call_for(B, 1)
    assert b_resolve.notification.status == "resolved"  # B is not held up by A either
    b_resolve.release.set()
    assert len(pager.sent(A)) == 1  # A's newer decision waits for its page to be answered
    page.release.set()
    change = pager.call_for(A, 1)
    assert {x.fingerprint for x in change.notification.alerts} == {a1.fingerprint, a2.fingerprint}
    change.release.set()
    # Then A resolves: firing, changed, resolved, each after the one before was answered.
    decide_at(h, GROUP_WAIT + 2 * GROUP_INTERVAL, [resolve(a1, 400), resolve(a2, 400)])
    last = pager.call_for(A, 2)
    last.release.set()
    wait_for(lambda: last.done.is_set() and h.rows() == [], WAIT, message="all delivered")
    assert [c.notification.status for c in pager.sent(A)] == ["firing", "firing", "resolved"]
    assert pager.most_per_group == 1
    assert pager.most_at_once == 2


def test_a_resolve_decided_while_the_firing_is_in_flight_follows_it(gated) -> None:
    h, pager = gated
    a = firing(A, queue="q1")
    decide_at(h, 0, [a])
    decide_at(h, GROUP_WAIT, [a])
    h.sender.start()
    page = pager.call_for(A)
    r = resolve(a, GROUP_WAIT + 1)
    # Nothing was logged yet, so this flush has nothing to say; the page in flight goes on and
    # is recorded, and the next flush sends the resolve.
    decide_at(h, GROUP_WAIT + GROUP_INTERVAL, [r])
    page.release.set()
    wait_for(lambda: h.nflog.get(page.notification.group_key, "pager"), WAIT, message="logged")
    decide_at(h, GROUP_WAIT + 2 * GROUP_INTERVAL, [r])
    pager.call_for(A, 1).release.set()
    wait_for(lambda: h.rows() == [], WAIT, message="resolve delivered")
    assert [c.notification.status for c in pager.sent(A)] == ["firing", "resolved"]


@pytest.mark.parametrize("cap", [1, 16])
def test_a_newer_decision_for_one_group_does_not_skip_another_groups_firing(gated, cap) -> None:
    h, pager = gated
    with_cap(h, cap)  # at 1, one send at a time: the queue order is what is tested
    a1, a2, b = firing(A, queue="q1"), firing(A, queue="q2"), firing(B, task="t1")
    decide_at(h, 0, [a1, b])
    decide_at(h, GROUP_WAIT, [a1, b])  # A queued first, then B
    h.sender.start()
    page = pager.call_for(A)
    decide_at(h, GROUP_WAIT + GROUP_INTERVAL, [a1, a2, b])  # A changes while in flight
    if cap > 1:
        pager.call_for(B).release.set()  # B goes while A's page is still unanswered
        wait_for(lambda: delivered(h, B), WAIT, message="B delivered")
        assert not page.done.is_set()
    page.release.set()
    if cap == 1:
        # B was decided before A's change: it goes next, A's newer decision after it.
        after = pager.call_for(B)
        assert len(pager.sent(A)) == 1
        after.release.set()
    pager.call_for(A, 1).release.set()
    wait_for(lambda: h.rows() == [], WAIT, message="all delivered")
    order = [A if A in c.notification.group_key else B for c in pager.calls]
    if cap == 1:
        assert order == [A, B, A]
    else:  # A's and B's first sends start together: either may call first
        assert sorted(order[:2]) == sorted([A, B]) and order[2:] == [A]
    entry = h.nflog.get(pager.sent(B)[0].notification.group_key, "pager")
    assert entry is not None and entry.firing == frozenset({b.fingerprint})


def test_sends_in_flight_per_channel_are_capped(gated) -> None:
    h, pager = gated
    with_cap(h, 2)
    alerts = [firing(f"Alert{i}", queue=f"q{i}") for i in range(5)]
    decide_at(h, 0, alerts)
    decide_at(h, GROUP_WAIT, alerts)
    h.sender.start()
    wait_for(lambda: len(pager.calls) == 2, WAIT, message="two sends in flight")
    assert h.sender.in_flight("pager") == 2
    for n in range(5):
        wait_for(lambda n=n: len(pager.calls) > n, WAIT, message=f"send {n}")
        pager.calls[n].release.set()
    wait_for(lambda: h.rows() == [], WAIT, message="all delivered")
    assert pager.most_at_once == 2
    assert h.sender.outcomes[("pager", "success")] == 5


def test_a_retry_in_one_group_backs_off_while_another_is_delivered(gated) -> None:
    h, pager = gated
    pager.open.set()
    a, b = firing(A, queue="q1"), firing(B, task="t1")
    decide_at(h, 0, [a, b])
    decide_at(h, GROUP_WAIT, [a, b])
    key_a = next(r.group_key for r in h.rows() if A in r.group_key)
    pager.errors[key_a] = [Retryable("429 slow down", retry_after=60)]
    h.sender.start()
    wait_for(lambda: delivered(h, B), WAIT, message="B delivered")
    wait_for(lambda: h.sender.outcomes[("pager", "retry")] == 1, WAIT, message="A retried")
    [row] = h.rows()
    assert row.attempts == 1 and row.next_attempt_at == T0 + GROUP_WAIT + 60
    assert len(pager.sent(A)) == 1  # not tried again before it is due
    h.clock.set(T0 + GROUP_WAIT + 60)
    h.sender.wake()
    wait_for(lambda: h.rows() == [], WAIT, message="A delivered once due")
    assert h.sender.outcomes[("pager", "success")] == 2
    assert h.sender.outcomes[("pager", "retry")] == 1


def test_stop_finishes_the_sends_in_flight_and_starts_no_new_one(gated) -> None:
    h, pager = gated
    with_cap(h, 1)
    a, b = firing(A, queue="q1"), firing(B, task="t1")
    decide_at(h, 0, [a, b])
    decide_at(h, GROUP_WAIT, [a, b])
    h.sender.start()
    page = pager.call_for(A)
    stopper = threading.Thread(target=h.sender.stop, kwargs={"timeout": WAIT})
    stopper.start()
    wait_for(lambda: h.sender._stop.is_set(), WAIT, message="stop requested")
    assert stopper.is_alive()  # waiting for the send in flight
    page.release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    entry = h.nflog.get(page.notification.group_key, "pager")
    assert entry is not None and entry.firing == frozenset({a.fingerprint})
    [left] = h.rows()  # B was not started: it stays for the next start
    assert B in left.group_key
    assert pager.sent(B) == []


def test_a_send_cut_off_by_a_crash_is_not_withdrawn_by_the_next_decision(
    tmp_path: Path,
) -> None:
    """The channel may have received the resolve when the process died: a re-fire must not
    silently withdraw it (the channel would show resolved while the alert fires, and the log,
    still saying "firing", would never page again). It is delivered, then the re-fire pages."""
    clock = FakeClock(T0)
    first = Harness(tmp_path / "sentinel.db", clock)
    a = firing(A, queue="q1")
    [page] = first.run(0, GROUP_WAIT, [a])
    r = resolve(a, GROUP_WAIT + 1)
    decide_at(first, GROUP_WAIT + GROUP_INTERVAL, [r])
    [row] = first.rows()
    assert row.status == "resolved"
    assert first.outbox.claim(row.group_key, row.channel, clock.now()) is not None
    first.close()  # died with the resolve's request open

    second = Harness(tmp_path / "sentinel.db", clock)
    again = replace(a, fired_at=T0 + 400, active_at=T0 + 400)
    second.at(GROUP_WAIT + GROUP_INTERVAL + 15, [again], drain=False)
    [kept] = second.rows()
    assert kept.id == row.id and kept.status == "resolved"
    sent = second.run(GROUP_WAIT + 2 * GROUP_INTERVAL, GROUP_WAIT + 3 * GROUP_INTERVAL, [again])
    assert [n.status for n in sent] == ["resolved", "firing"]
    assert sent[0].group_key == page.group_key
    second.close()


def test_a_definite_failure_leaves_the_row_withdrawable(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    h = Harness(tmp_path / "sentinel.db", clock)
    h.notifiers["pager"].always = Retryable("503")
    a = firing(A, queue="q1")
    h.run(0, GROUP_WAIT, [a])
    [row] = h.rows()
    assert row.attempts == 1 and row.sending_since is None
    h.at(GROUP_WAIT + GROUP_INTERVAL, [resolve(a, GROUP_WAIT + 1)], drain=False)
    assert h.rows() == []  # the channel never took it: withdrawn
    h.close()


def test_a_row_is_claimed_unmarked_when_the_sending_mark_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    h = Harness(tmp_path / "sentinel.db", clock)
    a = firing(A, queue="q1")
    decide_at(h, 0, [a])
    decide_at(h, GROUP_WAIT, [a])

    @contextmanager
    def disk_full() -> Iterator[None]:
        raise sqlite3.OperationalError("database or disk is full")
        yield

    with monkeypatch.context() as m:
        m.setattr(h.db, "transaction", disk_full)
        [row] = h.rows()
        claimed = h.outbox.claim(row.group_key, row.channel, clock.now())
    assert claimed is not None and claimed.id == row.id and claimed.sending_since is None
    h.close()
