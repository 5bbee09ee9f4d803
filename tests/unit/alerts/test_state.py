from __future__ import annotations

from dataclasses import replace

import pytest

from sentinel.alerts.state import step
from sentinel.clock import FakeClock
from sentinel.model import Alert, Labels, State
from tests.helpers import T0

LABELS = Labels(alertname="QueueBacklog", severity="warning", queue="celery")

PENDING = Alert(
    rule="QueueBacklog",
    labels=LABELS,
    annotations={"summary": "s"},
    state=State.PENDING,
    active_at=T0,
    value=1500.0,
    threshold=1000.0,
    updated_at=T0,
)
FIRING = replace(PENDING, state=State.FIRING, fired_at=T0 + 60, updated_at=T0 + 60)
RESOLVED = replace(FIRING, state=State.RESOLVED, resolved_at=T0 + 100, updated_at=T0 + 100)


def run(
    prev: Alert | None, active: bool | None, for_: float, now: float, value: float | None
) -> Alert | None:
    return step(
        prev,
        active,
        rule="QueueBacklog",
        labels=LABELS,
        value=value,
        threshold=1000.0,
        for_=for_,
        now=now,
    )


# (prev, active, for, now offset, value) -> state, active_at, fired_at, resolved_at, value
# "same" means the very same object comes back: nothing to record.
TRANSITIONS = [
    # inactive
    ("inactive, true, no for -> firing at once", None, True, 0, 5, 2000.0,
     (State.FIRING, 5, 5, None, 2000.0)),
    ("inactive, true, for -> pending", None, True, 60, 5, 2000.0,
     (State.PENDING, 5, None, None, 2000.0)),
    ("inactive, false -> nothing", None, False, 60, 5, 10.0, None),
    ("inactive, unknown -> nothing", None, None, 60, 5, None, None),
    # pending
    ("pending, true, for not elapsed -> pending", PENDING, True, 60, 59.9, 1600.0,
     (State.PENDING, 0, None, None, 1600.0)),
    ("pending, true, for just elapsed -> firing", PENDING, True, 60, 60, 1600.0,
     (State.FIRING, 0, 60, None, 1600.0)),
    ("pending, true, for long elapsed -> firing", PENDING, True, 60, 300, 1600.0,
     (State.FIRING, 0, 300, None, 1600.0)),
    ("pending, true, for shortened by reload -> firing", PENDING, True, 0, 1, 1600.0,
     (State.FIRING, 0, 1, None, 1600.0)),
    ("pending, false -> dropped", PENDING, False, 60, 30, 10.0, None),
    ("pending, unknown -> holds, value refreshed", PENDING, None, 60, 30, 1700.0,
     (State.PENDING, 0, None, None, 1700.0)),
    ("pending, unknown without value -> holds value", PENDING, None, 60, 30, None,
     (State.PENDING, 0, None, None, 1500.0)),
    ("pending, unknown past for -> still pending", PENDING, None, 60, 300, None,
     (State.PENDING, 0, None, None, 1500.0)),
    # firing
    ("firing, true -> firing, value refreshed", FIRING, True, 60, 90, 3000.0,
     (State.FIRING, 0, 60, None, 3000.0)),
    ("firing, false -> resolved", FIRING, False, 60, 90, 10.0,
     (State.RESOLVED, 0, 60, 90, 10.0)),
    ("firing, false even before for -> resolved", FIRING, False, 600, 61, 10.0,
     (State.RESOLVED, 0, 60, 61, 10.0)),
    ("firing, unknown -> holds", FIRING, None, 60, 90, None,
     (State.FIRING, 0, 60, None, 1500.0)),
    # resolved
    ("resolved, false -> same", RESOLVED, False, 60, 200, 10.0, "same"),
    ("resolved, unknown -> same", RESOLVED, None, 60, 200, None, "same"),
    ("resolved, true -> new pending, new active_at", RESOLVED, True, 60, 200, 1200.0,
     (State.PENDING, 200, None, None, 1200.0)),
    ("resolved, true, no for -> new firing", RESOLVED, True, 0, 200, 1200.0,
     (State.FIRING, 200, 200, None, 1200.0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prev", "active", "for_", "at", "value", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in TRANSITIONS],
)
def test_step(
    prev: Alert | None,
    active: bool | None,
    for_: float,
    at: float,
    value: float | None,
    expected: tuple[State, float, float | None, float | None, float] | str | None,
) -> None:
    new = run(prev, active, for_, T0 + at, value)
    if expected is None:
        assert new is None
        return
    if expected == "same":
        assert new is prev
        return
    assert new is not None
    assert isinstance(expected, tuple)
    state, active_at, fired_at, resolved_at, want_value = expected
    assert new.state is state
    assert new.active_at == T0 + active_at
    assert new.fired_at == (None if fired_at is None else T0 + fired_at)
    assert new.resolved_at == (None if resolved_at is None else T0 + resolved_at)
    assert new.value == want_value
    assert new.updated_at == T0 + at
    assert new.labels == LABELS
    assert new.rule == "QueueBacklog"
    assert new.threshold == 1000.0
    if prev is not None and prev.state is not State.RESOLVED:
        assert new.annotations == prev.annotations  # kept; the book re-renders them
    assert new.fingerprint == LABELS.fingerprint


def test_lifecycle_with_for() -> None:
    """Every 15 s for `for: 1m`: pending until a minute has passed, then firing, then resolved."""
    clock = FakeClock(T0)
    alert: Alert | None = None
    states = []
    timeline = [False, True, True, True, True, True, True, None, True, False, False, True]
    for active in timeline:
        alert = run(alert, active, 60.0, clock.now(), 1.0)
        states.append(alert.state.value if alert else "-")
        clock.advance(15)
    assert states == [
        "-",
        "pending",  # T0+15: active_at
        "pending",
        "pending",
        "pending",  # T0+60: 45 s
        "firing",  # T0+75: 60 s
        "firing",
        "firing",  # unknown: holds
        "firing",
        "resolved",
        "resolved",
        "pending",  # comes back: a new alert, `for` counted again
    ]
    assert alert is not None
    assert alert.active_at == T0 + 11 * 15


def test_pending_that_flaps_restarts_its_for() -> None:
    alert = run(None, True, 60.0, T0, 1.0)
    alert = run(alert, True, 60.0, T0 + 50, 1.0)
    assert alert is not None and alert.state is State.PENDING
    assert run(alert, False, 60.0, T0 + 55, 1.0) is None
    alert = run(None, True, 60.0, T0 + 56, 1.0)
    alert = run(alert, True, 60.0, T0 + 70, 1.0)
    assert alert is not None and alert.state is State.PENDING  # 14 s, not 70 s
    assert alert.active_at == T0 + 56
