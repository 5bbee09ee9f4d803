"""Webhook: Alertmanager's webhook v4 JSON, so existing receivers work unchanged, or a
user-supplied Jinja2 body (`format: template`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from sentinel.channels import http, templates
from sentinel.channels.base import ChannelBase, ChannelKind, Notification
from sentinel.fields import AlertCount, check_template
from sentinel.model import Alert, State, rfc3339


class WebhookChannel(ChannelBase):
    SECRETS = ("url",)
    type: Literal["webhook"]
    url: SecretStr
    format: Literal["alertmanager", "template"] = "alertmanager"
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_alerts: AlertCount = 0  # 0 = all, as in Alertmanager

    @model_validator(mode="after")
    def _body(self) -> WebhookChannel:
        if self.format == "template" and not self.body:
            raise ValueError("format: template needs a body")
        if self.body:
            check_template(self.body, "body")
        return self

    def describe(self) -> str:
        return f"webhook ({self.format}) to {_redact_url(self.url.get_secret_value())}"


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    return f"{scheme}{sep}{host}/..." if sep else "..."


# What Alertmanager puts in endsAt while an alert fires (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
TEST_HEADER = "X-Sentinel-Test"


def _alert(a: Alert, test: bool, external_url: str = "") -> dict[str, Any]:
    annotations = dict(a.annotations)
    if test:
        # Receivers display the summary, so that is where a test has to show.
        annotations["summary"] = f"{templates.TEST_MARK} {annotations.get('summary', a.rule)}"
    resolved = a.state is State.RESOLVED
    return {
        "status": "resolved" if resolved else "firing",
        "labels": dict(a.labels),
        "annotations": annotations,
        "startsAt": templates.starts_at(a),
        "endsAt": (rfc3339(a.resolved_at) if resolved else None) or ZERO_TIME,
        # The alert's row on the status page, as Prometheus links an alert to its expression.
        "generatorURL": a.extra.get("generatorURL")
        or (f"{external_url}/#alert-{a.fingerprint}" if external_url else ""),
        "fingerprint": a.fingerprint,
    }


def alertmanager_body(n: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """Alertmanager's webhook v4 message, keys in the order Alertmanager writes them."""
    alerts = [_alert(a, n.test, n.external_url) for a in (*n.firing, *n.resolved)]
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "receiver": n.channel,
        "status": n.status,
        "alerts": shown,
        "groupLabels": dict(n.group_labels),
        "commonLabels": templates.common([a["labels"] for a in alerts]),
        "commonAnnotations": templates.common([a["annotations"] for a in alerts]),
        "externalURL": n.external_url,
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
    }


def template_body(n: Notification, config: WebhookChannel) -> tuple[bytes, str]:
    """The rendered `body`, sent as JSON when it parses as JSON, else as plain text."""
    text = templates.render("body", n, {**config.templates, "body": config.body or ""})
    try:
        json.loads(text)
    except ValueError:
        return text.encode(), "text/plain; charset=utf-8"
    return text.encode(), "application/json"


class WebhookNotifier:
    def __init__(self, name: str, config: WebhookChannel) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Mapping[str, str]:
        if self.config.format == "template":
            body, content_type = template_body(notification, self.config)
        else:
            message = alertmanager_body(notification, self.config.max_alerts)
            body, content_type = json.dumps(message).encode(), "application/json"
        headers = dict(self.config.headers)
        if notification.test:
            headers[TEST_HEADER] = "true"
        http.post(
            self.config.url.get_secret_value(),
            body,
            content_type=content_type,
            timeout=self.config.timeout,
            headers=headers,
        )
        return {}


KIND = ChannelKind(type="webhook", schema=WebhookChannel, notifier=WebhookNotifier)
