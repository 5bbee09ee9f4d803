"""PagerDuty Events API v2: `trigger` while the group fires, `resolve` when it has resolved.

Both carry the same dedup_key (a hash of the group key), so PagerDuty folds repeats into the
open incident and the resolve closes exactly that incident.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import SecretStr

from sentinel.channels import http, templates
from sentinel.channels.base import ChannelBase, ChannelKind, Notification


class PagerDutyChannel(ChannelBase):
    SECRETS = ("routing_key",)
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str | None = None

    def describe(self) -> str:
        return f"pagerduty events v2 via {self.url}"


CLIENT = "sentinel"
MAX_SUMMARY = 1024  # longer summaries are rejected by the Events API


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def _alert_details(a: dict[str, Any]) -> dict[str, Any]:
    keys = ("labels", "annotations", "value", "threshold", "startsAt", "endsAt")
    return {k: a[k] for k in keys if a[k] is not None}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event(n: Notification, config: PagerDutyChannel) -> dict[str, Any]:
    """The Events v2 body for `n`; a resolve needs no payload (as Alertmanager sends it)."""
    ctx = templates.context(n)
    body: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": "trigger" if n.status == "firing" else "resolve",
        "dedup_key": dedup_key(n.group_key),
        "client": CLIENT,
    }
    if n.external_url:
        body["client_url"] = n.external_url
    if n.status != "firing":
        return body
    summary = templates.render("title", ctx, config.templates)
    body["payload"] = {
        "summary": _truncate(summary, MAX_SUMMARY),
        "source": config.source or "sentinel",
        "severity": ctx["severity"],
        "custom_details": {
            "firing": [_alert_details(a) for a in ctx["firing"]],
            "resolved": [_alert_details(a) for a in ctx["resolved"]],
            "num_firing": len(ctx["firing"]),
            "num_resolved": len(ctx["resolved"]),
            "group_labels": ctx["group_labels"],
            "test": n.test,
        },
    }
    if alertname := ctx["common_labels"].get("alertname"):
        body["payload"]["group"] = alertname
    return body


class PagerDutyNotifier:
    def __init__(self, name: str, config: PagerDutyChannel) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Mapping[str, str]:
        body = event(notification, self.config)
        http.post(
            self.config.url,
            json.dumps(body).encode(),
            content_type="application/json",
            timeout=self.config.timeout,
        )
        return {"dedup_key": body["dedup_key"]}


KIND = ChannelKind(type="pagerduty", schema=PagerDutyChannel, notifier=PagerDutyNotifier)
