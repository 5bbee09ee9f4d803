"""Private instances of the services the integration and e2e suites need.

Tests never touch data they did not make: each run starts its own `redis-server` on a free port
and its own RabbitMQ vhost, and removes both when it ends, so parallel runs and a developer's
own Redis and RabbitMQ data are safe.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unavailable(what: str) -> None:
    """Skip locally, fail under CI (as dramatiq's check_redis)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (required under CI)")
    pytest.skip(what)


class RedisServer:
    """A `redis-server` of our own: no persistence, on a free port, killed at the end."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class RabbitVhost:
    """A fresh RabbitMQ vhost for guest, deleted at the end (its queues and exchanges with it)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self.name = f"sentinel-test-{uuid.uuid4().hex[:10]}"
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/{self.name}"

    def create(self) -> None:
        if not port_open(self.host, self.port):
            unavailable(f"RabbitMQ is not running on {self.host}:{self.port}")
        if shutil.which("rabbitmqctl") is None:
            unavailable("rabbitmqctl is not installed (needed for a private vhost)")
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name, check=False)

    @staticmethod
    def _ctl(*args: str, check: bool = True) -> None:
        subprocess.run(
            ["rabbitmqctl", "-q", *args],
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
