"""The clearly-marked alert `sentinel notify-test` sends: firing, then resolved."""

from __future__ import annotations

from dataclasses import replace

from sentinel.channels.base import Notification
from sentinel.model import Alert, Labels, State

LABELS = Labels(alertname="SentinelTest", severity="info", source="sentinel-notify-test")
GROUP_KEY = '{}:{alertname="SentinelTest"}'


def test_notifications(channel: str, now: float) -> list[Notification]:
    firing = Alert(
        rule="SentinelTest",
        labels=LABELS,
        annotations={
            "summary": "Test alert from sentinel notify-test: no action needed",
            "description": "If you can read this, the channel is configured correctly.",
        },
        state=State.FIRING,
        active_at=now,
        fired_at=now,
        value=1.0,
        threshold=0.0,
        updated_at=now,
    )
    resolved = replace(firing, state=State.RESOLVED, resolved_at=now + 1, updated_at=now + 1)
    group = Labels(alertname="SentinelTest")
    return [
        Notification(channel, GROUP_KEY, group, "firing", (firing,), test=True),
        Notification(channel, GROUP_KEY, group, "resolved", (resolved,), test=True),
    ]
