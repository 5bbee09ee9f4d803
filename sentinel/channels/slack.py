"""Slack: one message per alert group, kept current with `chat.update`, history in its thread.

The first notification posts the message; every later one for the same group (repeat,
change, resolve) updates that message to the group's current state and replies in its
thread, so the channel shows one line per incident and the thread tells the story.
After a resolve, the next firing starts a fresh message: it is a new incident.
"""

from __future__ import annotations

import http.client
import math
import urllib.error
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from sentinel.channels import templates
from sentinel.channels.base import (
    ChannelBase,
    ChannelKind,
    Notification,
    NotifyError,
    Permanent,
    Retryable,
    retry_after,
)
from sentinel.templating import ENV


class SlackChannel(ChannelBase):
    SECRETS = ("token",)
    type: Literal["slack"]
    token: SecretStr
    channel: str
    api_url: str = "https://slack.com/api/"

    def describe(self) -> str:
        return f"slack {self.channel} via {self.api_url}"


_number = ENV.filters["number"]

COLOURS = {
    "critical": "#E01E5A",  # red
    "error": "#FF8C00",  # orange
    "warning": "#ECB22E",  # yellow
    "info": "#36C5F0",  # blue
    "resolved": "#2EB67D",  # green
}
MAX_ALERTS = 20  # Slack allows 50 blocks per message; keep room for header and context
MAX_TEXT = 2900  # a section's text is capped at 3000 characters
MAX_HEADER = 150
# The original message is gone or can no longer be edited: post a new one instead.
_LOST_MESSAGE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
_CONNECTION_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def escape(text: str) -> str:
    """Slack reads <...> as links and mentions; label values must show as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def colour(ctx: Mapping[str, Any]) -> str:
    return COLOURS["resolved"] if ctx["status"] == "resolved" else COLOURS[ctx["severity"]]


def _alert_block(
    a: dict[str, Any], ctx: dict[str, Any], overrides: Mapping[str, str]
) -> dict[str, Any]:
    line = escape(templates.render("alert", ctx, overrides, alert=a))
    icon = ":white_check_mark:" if a["status"] == "resolved" else ":rotating_light:"
    labels = " ".join(f"`{escape(k)}={escape(v)}`" for k, v in sorted(a["labels"].items()))
    value = f"*value* {_number(a['value'])} vs *threshold* {_number(a['threshold'])}"
    since = f"resolved {a['endsAt']}" if a["status"] == "resolved" else f"since {a['startsAt']}"
    text = f"{icon} *{line}*\n{value} · {since}\n{labels}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_TEXT)}}


def message(n: Notification, overrides: Mapping[str, str]) -> dict[str, Any]:
    """chat.postMessage / chat.update arguments (without channel and ts) for `n`."""
    ctx = templates.context(n)
    title = templates.render("title", ctx, overrides)
    shown = (ctx["firing"] + ctx["resolved"])[:MAX_ALERTS]
    alert_blocks = [_alert_block(a, ctx, overrides) for a in shown]
    hidden = len(ctx["alerts"]) - len(shown)
    if hidden:
        more = f"… and {hidden} more alert(s)"
        alert_blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, MAX_HEADER)}}
    ]
    if n.test:
        note = "This is a *test* sent by `sentinel notify-test`; no action is needed."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {
        "text": escape(title),  # notification and screen-reader fallback
        "blocks": blocks,
        "attachments": [{"color": colour(ctx), "fallback": title, "blocks": alert_blocks}],
    }


def classify_error(exc: Exception) -> NotifyError:
    """slack_sdk's failure -> Retryable (rate limit, 5xx, network) or Permanent (the rest)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = response.status_code
        error = (response.data.get("error") if isinstance(response.data, dict) else None) or ""
        detail = f"slack {error or 'error'} (HTTP {status})"
        if status == 429 or error == "ratelimited" or status >= 500:
            return Retryable(detail, retry_after(response.headers.get("Retry-After")))
        if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            return Retryable(detail)
        return Permanent(detail)
    if isinstance(exc, TimeoutError):
        return Retryable(f"slack timed out: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS):
        reason = getattr(exc, "reason", exc)
        return Retryable(f"slack unreachable: {type(reason).__name__}: {reason}")
    return Permanent(f"slack client error: {exc}")


class SlackNotifier:
    def __init__(self, name: str, config: SlackChannel) -> None:
        self.name = name
        self.config = config
        self.client = WebClient(
            token=config.token.get_secret_value(),
            base_url=config.api_url,
            timeout=max(1, math.ceil(config.timeout)),
            # The outbox retries with backoff; retrying here too would multiply the attempts.
            retry_handlers=[],
        )

    def send(self, notification: Notification) -> Mapping[str, str]:
        try:
            return self._send(notification)
        except (SlackClientError, *_CONNECTION_ERRORS) as e:
            raise classify_error(e) from e

    def _send(self, n: Notification) -> dict[str, str]:
        msg = message(n, self.config.templates)
        memo = n.memo
        status = {"status": n.status}
        if not memo.get("ts") or (memo.get("status") == "resolved" and n.status == "firing"):
            posted = self.client.chat_postMessage(channel=self.config.channel, **msg)
            return {"ts": posted["ts"], "channel": posted["channel"], **status}
        channel, ts = memo.get("channel") or self.config.channel, memo["ts"]
        try:
            self.client.chat_update(channel=channel, ts=ts, **msg)
        except SlackApiError as e:
            if e.response.get("error") not in _LOST_MESSAGE:
                raise
            posted = self.client.chat_postMessage(channel=self.config.channel, **msg)
            return {"ts": posted["ts"], "channel": posted["channel"], **status}
        reply = templates.render("text", n, self.config.templates)
        text = _cut(f"*{msg['text']}*\n{escape(reply)}", MAX_TEXT)
        self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text)
        return {"ts": ts, "channel": channel, **status}


KIND = ChannelKind(type="slack", schema=SlackChannel, notifier=SlackNotifier)
