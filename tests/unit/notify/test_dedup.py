"""notify_reason: Alertmanager's `needsUpdate`, as a table."""

from __future__ import annotations

import pytest

from sentinel.notify.dedup import notify_reason
from sentinel.notify.nflog import LogEntry
from tests.helpers import T0

REPEAT = 4 * 3600.0
A, B = "fp-a", "fp-b"


def sent(firing: set[str], resolved: set[str] | None = None) -> LogEntry:
    """What the channel was last told, at T0."""
    return LogEntry(frozenset(firing), frozenset(resolved or ()), T0, {})


# (id, last, firing now, resolved now, send_resolved, seconds after T0, reason)
CASES = [
    ("new: no entry, firing", None, {A}, set(), True, 0, "new"),
    ("new: no entry, firing and resolved", None, {A}, {B}, True, 0, "new"),
    ("nothing: no entry, only resolved", None, set(), {A}, True, 0, None),
    ("nothing: no entry, only resolved, no send_resolved", None, set(), {A}, False, 0, None),
    ("nothing: no entry, no alerts", None, set(), set(), True, 0, None),
    ("changed: a new alert fires", sent({A}), {A, B}, set(), True, 10, "changed"),
    ("changed: a new alert fires, no send_resolved", sent({A}), {A, B}, set(), False, 10,
     "changed"),
    ("changed: another alert replaces the one told", sent({A}), {B}, {A}, False, 10, "changed"),
    ("changed: re-fire after a recorded resolve", sent(set(), {A}), {A}, set(), True, 10,
     "changed"),
    ("changed: re-fire after a resolve recorded without send_resolved", sent(set(), {A}), {A},
     set(), False, 10, "changed"),
    ("resolved: all resolved, send_resolved", sent({A, B}), set(), {A, B}, True, 10, "resolved"),
    ("resolved: all resolved, no send_resolved (the log must forget)", sent({A, B}), set(),
     {A, B}, False, 10, "resolved"),
    ("resolved: all gone (muted or dropped)", sent({A}), set(), set(), True, 10, "resolved"),
    ("nothing: the resolve was already told", sent(set(), {A}), set(), {A}, True, 10, None),
    ("nothing: fired and resolved between two notifications", sent(set(), {A}), set(), {A, B},
     True, 10, None),
    ("changed: partial resolve with send_resolved", sent({A, B}), {A}, {B}, True, 10, "changed"),
    ("nothing: partial resolve without send_resolved", sent({A, B}), {A}, {B}, False, 10, None),
    ("nothing: partial resolve already told", sent({A}, {B}), {A}, {B}, True, 10, None),
    ("nothing: one of the told alerts left the group", sent({A, B}), {A}, set(), True, 10, None),
    ("nothing: unchanged, just after the send", sent({A}), {A}, set(), True, 0, None),
    ("nothing: unchanged, before repeat_interval", sent({A}), {A}, set(), True, REPEAT - 1, None),
    ("repeat: unchanged, after repeat_interval", sent({A}), {A}, set(), True, REPEAT + 1,
     "repeat"),
    ("repeat: long after repeat_interval", sent({A}), {A}, set(), False, 10 * REPEAT, "repeat"),
    ("repeat: partial resolve without send_resolved, after repeat_interval", sent({A, B}), {A},
     {B}, False, REPEAT + 1, "repeat"),
    ("changed wins over repeat", sent({A}), {A, B}, set(), True, REPEAT + 1, "changed"),
    ("resolved wins over repeat", sent({A}), set(), {A}, True, REPEAT + 1, "resolved"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("last", "firing", "resolved", "send_resolved", "after", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_notify_reason(
    last: LogEntry | None,
    firing: set[str],
    resolved: set[str],
    send_resolved: bool,
    after: float,
    expected: str | None,
) -> None:
    reason = notify_reason(
        last,
        frozenset(firing),
        frozenset(resolved),
        repeat=REPEAT,
        now=T0 + after,
        send_resolved=send_resolved,
    )
    assert reason == expected


def test_repeat_interval_is_measured_from_the_last_send() -> None:
    last = LogEntry(frozenset({A}), frozenset(), T0 + 1000, {})
    kw = {"repeat": REPEAT, "send_resolved": True}
    assert notify_reason(last, frozenset({A}), frozenset(), now=T0 + REPEAT + 1, **kw) is None
    assert notify_reason(last, frozenset({A}), frozenset(), now=T0 + REPEAT + 1001, **kw) == (
        "repeat"
    )
