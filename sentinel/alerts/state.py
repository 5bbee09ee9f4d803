"""Pure alert transitions: inactive -> pending -> firing -> resolved, with `for` durations."""

from __future__ import annotations

from dataclasses import replace

from sentinel.model import Alert, Labels, State


def step(
    prev: Alert | None,
    active: bool | None,
    *,
    rule: str,
    labels: Labels,
    value: float | None,
    threshold: float,
    for_: float,
    now: float,
) -> Alert | None:
    """The alert after one evaluation, or None when there is (and was) nothing to track.

    `active` None means "cannot tell": the alert stays as it was, only its value refreshes.
    A pending alert whose condition clears is dropped without a trace (it never paged);
    a firing one resolves and is kept so its resolve can be sent and shown.
    """
    if active is None:
        if prev is None or prev.state is State.RESOLVED:
            return prev
        return replace(prev, value=value if value is not None else prev.value, updated_at=now)

    live = prev is not None and prev.state is not State.RESOLVED
    if active:
        if not live:
            prev = Alert(
                rule=rule,
                labels=labels,
                annotations={},
                state=State.PENDING,
                active_at=now,
                value=value,
                threshold=threshold,
                updated_at=now,
            )
        assert prev is not None
        if prev.state is State.PENDING and now - prev.active_at >= for_:
            return replace(
                prev,
                state=State.FIRING,
                fired_at=now,
                value=value,
                threshold=threshold,
                updated_at=now,
            )
        return replace(prev, value=value, threshold=threshold, updated_at=now)

    if not live:
        return prev
    assert prev is not None
    if prev.state is State.PENDING:
        return None
    # A resolve with no value (the rule only knows it is over) shows the last one known.
    value = value if value is not None else prev.value
    return replace(prev, state=State.RESOLVED, resolved_at=now, value=value, updated_at=now)
