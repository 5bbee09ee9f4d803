"""Log channel: one line per notification in the daemon's own log (logger sentinel.notify.log).

Useful as a first channel, in tests, and as a record next to a real channel. It never raises:
a channel that only writes a log line has nothing worth retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from sentinel.channels import templates
from sentinel.channels.base import ChannelBase, ChannelKind, Notification


class LogChannel(ChannelBase):
    type: Literal["log"]

    def describe(self) -> str:
        return "log (writes notifications to the daemon's log)"


log = logging.getLogger("sentinel.notify.log")


def line(n: Notification, overrides: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The message and its structured fields (for `--log-format json`)."""
    ctx = templates.context(n)
    title = templates.render("title", ctx, overrides)
    group = ",".join(f"{k}={v}" for k, v in sorted(ctx["group_labels"].items()))
    summaries = [
        f"{a['status']}: {templates.render('alert', ctx, overrides, alert=a)}"
        for a in ctx["alerts"]
    ]
    fields = {
        "channel": n.channel,
        "status": n.status,
        "group_labels": ctx["group_labels"],
        "alerts": [
            {"fingerprint": a["fingerprint"], "status": a["status"], "summary": a["summary"]}
            for a in ctx["alerts"]
        ],
        "test": n.test,
    }
    return f"{title} {{{group}}} " + "; ".join(summaries), fields


class LogNotifier:
    def __init__(self, name: str, config: Any = None) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Mapping[str, str]:
        overrides = getattr(self.config, "templates", None)
        level = logging.WARNING if notification.status == "firing" else logging.INFO
        try:
            message, fields = line(notification, overrides)
        except Exception:  # a formatting bug must not turn the log channel into a failing one
            log.exception("could not format notification for group %s", notification.group_key)
            message, fields = f"[{notification.status.upper()}] {notification.group_key}", {}
        log.log(level, "%s", message, extra={"notification": fields})
        return {}


KIND = ChannelKind(type="log", schema=LogChannel, notifier=LogNotifier)
