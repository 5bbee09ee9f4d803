"""Links into sentinel that leave it (a webhook's externalURL, an alert's generatorURL), all
built from server.external_url, so they work from wherever users reach sentinel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sentinel.model import Alert


def generator_url(base_url: str, fingerprint: str) -> str:
    """The alert on the status page."""
    return f"{base_url}/#alert-{fingerprint}"


def with_generator_urls(base_url: str, alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    """The alerts, each carrying its generatorURL (in `extra`, where channels read it)."""
    if not base_url:
        return tuple(alerts)
    return tuple(
        replace(a, extra={**a.extra, "generatorURL": generator_url(base_url, a.fingerprint)})
        for a in alerts
    )
