"""Helpers shared by the test suites (fixtures stay in conftest.py, which imports from here):
the fixed start time, the repository root, polling, brokers and worker subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

T0 = 1_700_000_000.0  # the FakeClock start of the unit tests (a multiple of 10: bucket edges)

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.1,
    message: str = "condition",
) -> object:
    """Poll until predicate() is truthy; never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@dataclass
class Broker:
    kind: str
    url: str
    queue: str
    queues_to_clean: list[str] = field(default_factory=list)

    def purge(self) -> None:
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            if self.kind == "redis":
                client = conn.default_channel.client
                client.flushdb()
            else:
                channel = conn.default_channel
                for name in {self.queue, *self.queues_to_clean}:
                    try:
                        channel.queue_delete(name)
                    except Exception:
                        channel = conn.channel()


class Worker:
    """A real `celery worker` subprocess with a 1 s heartbeat (expires 2 s after it stops)."""

    def __init__(
        self,
        broker: Broker,
        name: str,
        queue: str,
        log_dir: Path,
        heartbeat: int = 1,
        concurrency: int = 1,
        events: bool = True,
        hostname: str | None = None,
        env: dict[str, str] | None = None,
        pool: str | None = None,
        heartbeats: bool = True,
    ) -> None:
        """events=False: no `-E` and worker_send_task_events off (sentinel sees no events
        unless it enables them). hostname: a fixed name (a restart of the same worker)."""
        self.name = name
        self.hostname = hostname or f"{name}@{socket.gethostname()}"
        env = {
            **os.environ,
            "SENTINEL_TEST_BROKER": broker.url,
            "SENTINEL_TEST_QUEUE": queue,
            "SENTINEL_TEST_EVENTS": "1" if events else "0",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integration.app",
                "worker",
                "-P",
                pool or ("solo" if concurrency == 1 else "prefork"),
                "-c",
                str(concurrency),
                *(["-E"] if events else []),
                "-n",
                self.hostname,
                "-Q",
                queue,
                *(
                    ["--heartbeat-interval", str(heartbeat)]
                    if heartbeats
                    else ["--without-heartbeat"]
                ),
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_path.read_text()}")
            return b"ready." in self.log_path.read_bytes()

        wait_for(ready, timeout, message=f"worker {self.hostname} ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def start_daemon(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`sentinel run -c config_path` as a child process, its output appended to log_path."""
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "sentinel", "run", "-c", str(config_path)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


HA_CONFIG = """
celery:
  broker_url: "{broker}"
  queues: [{queue}]
  inspect_interval: 1s
  inspect_timeout: 500ms
evaluation:
  interval: {evaluation}
storage:
  url: "{storage}"
ha:
  enabled: true
  lease: {lease}
  replica: {replica}
server:
  listen: 127.0.0.1:0
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["{queue}"]
    threshold: 3
route:
  channels: [hook]
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
channels:
  hook: {{type: webhook, url: "{hook}"}}
"""


class Replica:
    """One `sentinel run` of an HA pair (HA_CONFIG), its log in `directory`."""

    def __init__(self, directory: Path, name: str, **settings: object) -> None:
        self.name = name
        self.config = directory / f"{name}.yaml"
        self.config.write_text(HA_CONFIG.format(replica=name, **settings))
        self.log_path = directory / f"{name}.log"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        import re

        log = open(self.log_path, "ab")  # noqa: SIM115 - the process writes it
        start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "run", "-c", str(self.config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def listening() -> re.Match[str] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"sentinel {self.name} exited:\n{self.log()}")
            return re.search(r"HTTP API listening on [\d.]+:(\d+)", self.log()[start:])

        match = wait_for(listening, 30, message=f"sentinel {self.name} up")
        self.url = f"http://127.0.0.1:{match.group(1)}"  # type: ignore[attr-defined]
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def role(self) -> str:
        """'leader', 'follower', or '' when it does not answer (dead, paused)."""
        import requests

        try:
            body = requests.get(self.url + "/readyz", timeout=0.5).text
        except requests.RequestException:
            return ""
        for line in body.splitlines():
            if line.startswith("ha: "):
                return line.split()[3]
        return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
