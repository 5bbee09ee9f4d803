"""What every channel implements, how it reports errors, and the registry of channel kinds.

A notifier turns one Notification (a group of alerts, firing or resolved) into one delivery.
It never retries by itself: it classifies each failure as Retryable or Permanent, and the
outbox sender (the one place that retries) decides what happens next.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field, field_validator

from sentinel.fields import InFlight, Strict, Timeout, check_template
from sentinel.model import Alert, Labels
from sentinel.units import brief


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


# Values left in a secret by a template or an example: a channel with one cannot deliver.
_PLACEHOLDER = re.compile(
    r"not[-_ ]?configured|change[-_ ]?me|replace[-_ ]?me|placeholder|"
    r"^(?:<.*>|x{3,}|xox[a-z]-?|todo|tbd|fixme|none|null|secret|password|token|dummy|"
    r"your[-_ ].*)$",
    re.IGNORECASE,
)


def placeholder(secret: str) -> str | None:
    """Why this secret cannot be real (empty, a placeholder), or None."""
    text = secret.strip()
    if not text:
        return "is empty"
    if "${" in text:
        return "holds a ${...} that was never expanded"
    match = _PLACEHOLDER.search(text)
    if match:
        return f"looks like a placeholder ({brief(match.group(0))})"
    return None


class ChannelBase(Strict):
    if TYPE_CHECKING:  # every channel's schema declares it, as a Literal (the union's tag)
        type: str
    # The secret fields `check` inspects for empty or placeholder values.
    SECRETS: ClassVar[tuple[str, ...]] = ()

    send_resolved: bool = True
    templates: dict[str, str] = Field(default_factory=dict)  # per-channel Jinja2 overrides
    timeout: Timeout = 10.0
    # Sends to this channel in flight at once, each for a different group (one group's
    # notifications stay in order): a slow receiver then delays only the groups it holds.
    max_in_flight: InFlight = 16

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for name, source in v.items():
            check_template(source, f"templates.{name}")
        return v

    def describe(self) -> str:
        return ""

    def placeholder_secrets(self) -> list[tuple[str, str]]:
        """(key, reason) for each secret that is empty or a placeholder."""
        out = []
        for key in self.SECRETS:
            value = getattr(self, key)
            if value is None:  # optional and not given (email without auth)
                continue
            reason = placeholder(value.get_secret_value())
            if reason is not None:
                out.append((key, reason))
        return out


@dataclass(frozen=True, slots=True)
class ChannelKind:
    """Everything the rest of sentinel knows about one channel type, declared by the channel's
    own module as `KIND`: the config's channel union, the secret fields (`_file` expansion and
    the placeholder check) and the sender are all read from the registry of these."""

    type: str
    schema: builtins.type[ChannelBase]  # `type` is the field above, in this class
    notifier: Callable[[str, Any], Notifier]
