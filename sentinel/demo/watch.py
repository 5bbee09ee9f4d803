"""What the demo knows about sentinel: its JSON log (transitions, pages) and its HTTP API.

The log is the exact record: every alert transition and every delivered notification is a
line with structured fields. The API is polled once a second for the live numbers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

HIDDEN_LABELS = ("alertname", "severity", "env")


def instance(labels: dict[str, str]) -> str:
    """`Name{queue=images}`: the alert name and the labels that tell its instances apart."""
    rest = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS)
    name = labels.get("alertname", "?")
    return f"{name}{{{rest}}}" if rest else name


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    fingerprint: str
    labels: dict[str, str]
    before: str
    after: str
    value: float | None
    threshold: float | None


@dataclass(frozen=True, slots=True)
class Sent:
    """A notification sentinel delivered to one channel."""

    at: float
    channel: str
    status: str
    group: dict[str, str]


@dataclass(frozen=True, slots=True)
class LogPage:
    """What the `log` channel wrote: the page as an operator reading the log sees it."""

    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Problem:
    at: float
    level: str
    text: str


LogItem = Transition | Sent | LogPage | Problem


def parse_line(line: str) -> LogItem | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a traceback or a library printing to stderr: kept in the log file
    if not isinstance(record, dict):
        return None
    try:
        at = datetime.fromisoformat(record["ts"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    msg = str(record.get("msg", ""))
    if "to_state" in record and isinstance(record.get("labels"), dict):
        return Transition(
            at,
            str(record.get("fingerprint", "")),
            {str(k): str(v) for k, v in record["labels"].items()},
            str(record.get("from_state")),
            str(record["to_state"]),
            _float(record.get("value")),
            _float(record.get("threshold")),
        )
    if record.get("outcome") == "success" and "channel" in record:
        group = record.get("group_labels")
        return Sent(
            at,
            str(record["channel"]),
            str(record.get("status", "")),
            {str(k): str(v) for k, v in group.items()} if isinstance(group, dict) else {},
        )
    if record.get("logger") == "sentinel.notify.log":
        return LogPage(at, msg)
    if record.get("level") in ("warning", "error", "critical"):
        return Problem(at, str(record["level"]), f"{record.get('logger')}: {msg}")
    return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class LogTail:
    """Reads the lines appended to sentinel's log since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[LogItem]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        items = []
        for raw in lines:
            item = parse_line(raw.decode(errors="replace"))
            if item is not None:
                items.append(item)
        return items


@dataclass(slots=True)
class Snapshot:
    at: float
    alerts: list[dict[str, Any]] = field(default_factory=list)
    events_total: float = 0.0
    workers: dict[str, bool] = field(default_factory=dict)
    queues: dict[str, float] = field(default_factory=dict)


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=2) as response:
            body: bytes = response.read()
            return body

    def healthy(self) -> bool:
        try:
            self._get("/healthz")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def snapshot(self, at: float) -> Snapshot | None:
        """None while sentinel does not answer (starting, stopping)."""
        try:
            alerts = json.loads(self._get("/api/v1/alerts"))
            metrics = self._get("/metrics").decode()
        except (OSError, urllib.error.URLError, ValueError):
            return None
        snap = Snapshot(at, alerts if isinstance(alerts, list) else [])
        for family in text_string_to_metric_families(metrics):
            for sample in family.samples:
                if sample.name == "sentinel_events_total":
                    snap.events_total += sample.value
                elif sample.name == "celery_worker_up":
                    snap.workers[sample.labels.get("hostname", "?")] = sample.value >= 1
                elif sample.name == "celery_queue_length":
                    snap.queues[sample.labels.get("queue_name", "?")] = sample.value
        return snap
