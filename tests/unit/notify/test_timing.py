"""When evaluations happen between interval ticks: a pending alert's `for` deadline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.model import State
from tests.helpers import T0

CONFIG = """
celery:
  broker_url: "memory://"
evaluation:
  interval: 15s
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    for: 30s
    severity: critical
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sentinel(clock: FakeClock) -> Iterator[Sentinel]:
    s = Sentinel(parse(CONFIG, env={}), clock, persist=False)
    yield s


def counting(s: Sentinel, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    real = s.evaluate

    def evaluate() -> Any:
        calls.append(s.clock.now())
        return real()

    monkeypatch.setattr(s, "evaluate", evaluate)
    return calls


def test_for_fires_at_its_deadline_between_ticks(
    sentinel: Sentinel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel.store.probe_ok("inspect", T0)  # evidence, and no live worker
    sentinel.evaluate()  # interval tick at T0: pending
    clock.set(T0 + 15)
    sentinel.evaluate()  # interval tick at T0+15: still pending
    calls = counting(sentinel, monkeypatch)
    clock.set(T0 + 29)
    sentinel.watch_pending()
    assert calls == []
    [alert] = sentinel.book.alerts.values()
    assert alert.state is State.PENDING
    clock.set(T0 + 30)
    sentinel.watch_pending()  # not the T0+45 tick
    assert calls == [T0 + 30]
    [alert] = sentinel.book.alerts.values()
    assert alert.state is State.FIRING and alert.fired_at == T0 + 30
    clock.set(T0 + 31)
    sentinel.watch_pending()  # nothing pending any more
    assert calls == [T0 + 30]


def test_a_deadline_that_could_not_tell_is_evaluated_once(
    sentinel: Sentinel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel.store.probe_ok("inspect", T0)
    sentinel.evaluate()
    # The broker goes away: the rule cannot tell, so the alert stays pending past its `for`.
    sentinel.store.probe_failed("events", "ConnectionError", T0 + 1)
    sentinel.store.probe_failed("inspect", "ConnectionError", T0 + 1)
    calls = counting(sentinel, monkeypatch)
    for t in (30, 31, 32, 40):
        clock.set(T0 + t)
        sentinel.watch_pending()
    assert calls == [T0 + 30]
    [alert] = sentinel.book.alerts.values()
    assert alert.state is State.PENDING


def test_a_stuck_deadline_does_not_hide_a_later_one(
    sentinel: Sentinel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.model import Alert, Labels

    sentinel.store.probe_ok("inspect", T0)
    sentinel.evaluate()  # NoLiveWorkers pending since T0: deadline T0+30
    assert len(sentinel.book.alerts) == 1
    # Another pending alert (as if from another rule instance) whose `for` ends later.
    later = Alert(
        rule="NoLiveWorkers",
        labels=Labels({"alertname": "NoLiveWorkers", "x": "1"}),
        annotations={},
        state=State.PENDING,
        active_at=T0 + 20,
        value=0.0,
        threshold=1.0,
    )
    sentinel.store.probe_failed("events", "ConnectionError", T0 + 1)
    sentinel.store.probe_failed("inspect", "ConnectionError", T0 + 1)
    calls = counting(sentinel, monkeypatch)
    clock.set(T0 + 30)
    sentinel.watch_pending()
    assert calls == [T0 + 30]  # could not tell: still pending
    sentinel.book.alerts[later.fingerprint] = later
    clock.set(T0 + 45)
    sentinel.watch_pending()
    clock.set(T0 + 50)
    sentinel.watch_pending()
    assert calls == [T0 + 30, T0 + 50]
