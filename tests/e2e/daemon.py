"""`sentinel run` as a real process on a private Redis, with the HTTP API on a free port:
shared by the end-to-end tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import ROOT, wait_for

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

CONFIG = """
celery:
  broker_url: "{broker}"
  queues: [sentinel-e2e-daemon]
  inspect_interval: 1s
  inspect_timeout: 500ms
evaluation:
  interval: 1s
storage:
  path: "{db}"
server:
  listen: 127.0.0.1:0
  token: s3cret
rules:
{rules}
route:
  channels: [log]
  group_wait: 0s
  group_interval: 1s
channels:
  log: {{type: log}}
"""

NO_WORKERS = """
  - name: NoLiveWorkers
    kind: no_live_workers
    severity: critical
"""
BACKLOG = """
  - name: QueueBacklog
    kind: queue_backlog
    threshold: 1000
"""


class Daemon:
    def __init__(self, tmp_path: Path, rules: str, broker: str) -> None:
        self.broker = broker
        self.config = tmp_path / "rules.yaml"
        self.db = tmp_path / "sentinel.db"
        self.write(rules)
        self.log_path = tmp_path / "sentinel.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "run", "-c", str(self.config)],
                cwd=ROOT,
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        match = wait_for(
            lambda: re.search(r"HTTP API listening on [\d.]+:(\d+)", self.log()),
            30,
            message="HTTP API up",
        )
        self.url = f"http://127.0.0.1:{match.group(1)}"  # type: ignore[union-attr]

    def write(self, rules: str) -> None:
        self.config.write_text(CONFIG.format(broker=self.broker, db=self.db, rules=rules))

    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str) -> object:
        return requests.get(self.url + path, timeout=5).json()

    def alerts(self) -> list[dict]:  # type: ignore[type-arg]
        return self.get("/api/v1/alerts")  # type: ignore[return-value]

    def firing(self, name: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            a for a in self.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
