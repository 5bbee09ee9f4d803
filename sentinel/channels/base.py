"""What every channel implements, how it reports errors, and the registry of channel kinds.

A notifier turns one Notification (a group of alerts, firing or resolved) into one delivery.
It never retries by itself: it classifies each failure as Retryable or Permanent, and the
outbox sender (the one place that retries) decides what happens next.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sentinel.model import Alert, Labels


class NotifyError(Exception):
    """A delivery failed. `detail` is the channel's own words, shown to the operator."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Retryable(NotifyError):
    """Worth trying again: connection refused or reset, timeout, 5xx, 429, rate limiting."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Permanent(NotifyError):
    """Trying again cannot help: bad credentials, unknown channel, a 4xx the payload caused."""


def classify(status: int) -> type[NotifyError] | None:
    """HTTP status -> None (delivered) or the error class to raise."""
    if status < 300:
        return None
    return Retryable if status >= 500 or status in (408, 425, 429) else Permanent


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are rare here)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            import time

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Notification:
    """One message to one channel about one alert group.

    `status` is "firing" while any alert in the group fires, "resolved" when all have resolved.
    `alerts` holds the group's firing alerts and, with send_resolved, those resolved since
    the last notification. `memo` is what this channel returned from the previous delivery to
    the same group (a Slack message ts, an email Message-ID), so a resolve can update or thread
    under the page it resolves.
    """

    channel: str
    group_key: str  # stable id of the group: route path + group_by label values
    group_labels: Labels
    status: Literal["firing", "resolved"]
    alerts: tuple[Alert, ...]
    memo: Mapping[str, str] = field(default_factory=dict)
    test: bool = False  # sent by `sentinel notify-test`: channels mark it as such
    external_url: str = ""

    @property
    def firing(self) -> tuple[Alert, ...]:
        from sentinel.model import State

        return tuple(a for a in self.alerts if a.state is not State.RESOLVED)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        from sentinel.model import State

        return tuple(a for a in self.alerts if a.state is State.RESOLVED)


class Notifier(Protocol):
    name: str

    def send(self, notification: Notification) -> Mapping[str, str]:
        """Deliver, or raise Retryable/Permanent. Returns a memo to keep for the next delivery
        to this group on this channel (empty when the channel needs none)."""
        ...


NOTIFIERS = {
    "slack": "sentinel.channels.slack:SlackNotifier",
    "pagerduty": "sentinel.channels.pagerduty:PagerDutyNotifier",
    "email": "sentinel.channels.email:EmailNotifier",
    "webhook": "sentinel.channels.webhook:WebhookNotifier",
    "log": "sentinel.channels.log:LogNotifier",
}


def notifier_class(kind: str) -> Any:
    module, _, cls = NOTIFIERS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, config: Any) -> Notifier:
    """A notifier for channel `name` of rules.yaml, from its validated config."""
    return notifier_class(config.type)(name, config)  # type: ignore[no-any-return]
