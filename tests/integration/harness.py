"""Run sentinel in-process against a real broker, with short intervals, and read its alerts."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from sentinel.app import Sentinel
from sentinel.config import Config, parse
from sentinel.model import Alert, State
from tests.helpers import Broker, wait_for


def config_for(
    broker: Broker,
    tmp_path: Path,
    rules: str,
    *,
    queues: list[str] | None = None,
    extra: str = "",
    celery: str = "",
) -> Config:
    """extra: more top-level sections; celery: more keys of the celery section."""
    queues = queues or [broker.queue]
    text = f"""
celery:
  broker_url: "{broker.url}"
  queues: {queues}
  inspect_interval: 1s
  inspect_timeout: 1s
{textwrap.indent(textwrap.dedent(celery).strip(), "  ")}
evaluation:
  interval: 1s
storage:
  path: "{tmp_path / "sentinel.db"}"
server:
  listen: 127.0.0.1:0
limits:
  bucket: 1s
{extra}
rules:
{textwrap.indent(textwrap.dedent(rules).strip(), "  ")}
"""
    return parse(text, env={})


def alerts(s: Sentinel, rule: str) -> list[Alert]:
    return [a for a in list(s.book.alerts.values()) if a.rule == rule]


def firing(s: Sentinel, rule: str, **labels: str) -> Alert | None:
    for a in alerts(s, rule):
        if a.state is State.FIRING and all(a.labels.get(k) == v for k, v in labels.items()):
            return a
    return None


def wait_firing(s: Sentinel, rule: str, timeout: float = 30.0, **labels: str) -> Alert:
    return wait_for(
        lambda: firing(s, rule, **labels),
        timeout,  # type: ignore[return-value]
        message=f"{rule}{labels} firing",
    )


def wait_resolved(s: Sentinel, rule: str, timeout: float = 30.0, **labels: str) -> None:
    def resolved() -> bool:
        matching = [
            a for a in alerts(s, rule) if all(a.labels.get(k) == v for k, v in labels.items())
        ]
        return bool(matching) and all(a.state is State.RESOLVED for a in matching)

    wait_for(resolved, timeout, message=f"{rule}{labels} resolved")


def wait_live_workers(s: Sentinel, n: int, timeout: float = 20.0) -> None:
    """Wait for n live workers whose periodic heartbeat (not just a requested one) was seen."""

    def count() -> bool:
        now = time.time()
        with s.store.lock:
            return sum(1 for w in s.store.workers.values() if w.alive(now) and w.regular) == n

    wait_for(count, timeout, message=f"{n} live worker(s)")
