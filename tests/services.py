"""Private instances of the services the integration and e2e suites need.

Tests never touch data they did not make: each run starts its own `redis-server` on a free port
and its own RabbitMQ vhost, and removes both when it ends, so parallel runs and a developer's
own Redis and RabbitMQ data are safe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

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


# The PostgreSQL the suite may use (trust auth on this machine); each run makes its own
# database on it and drops it at the end.
POSTGRES_ADMIN_URL = os.environ.get(
    "SENTINEL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class PostgresDatabase:
    """A database of our own on the machine's PostgreSQL, named uniquely, dropped at the end;
    each test takes a schema of its own in it (`schema_url`)."""

    def __init__(self, admin_url: str = POSTGRES_ADMIN_URL) -> None:
        self.admin_url = admin_url
        self.name = f"sentinel_test_{uuid.uuid4().hex[:12]}"

    def _admin(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as e:
            unavailable(f"PostgreSQL is not reachable at {self.admin_url}: {e}")

    @property
    def url(self) -> str:
        import psycopg.conninfo

        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=self.name)

    def create(self) -> None:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def schema_url(self, schema: str) -> str:
        """A URL whose tables live in `schema` (created here): one test's private store."""
        import psycopg
        import psycopg.conninfo

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        base = psycopg.conninfo.conninfo_to_dict(self.url)
        return (
            f"postgresql://{base.get('user', 'postgres')}@{base.get('host', '127.0.0.1')}:"
            f"{base.get('port', 5432)}/{self.name}?options=-csearch_path%3D{schema}"
        )


class TcpProxy:
    """A loopback TCP proxy a test can cut: `cut()` drops every connection and refuses new ones
    (the database seen through it is unreachable), `restore()` lets them through again. The
    server behind it is the real one and never restarted, so other users of it are safe."""

    def __init__(self, host: str, port: int) -> None:
        import threading

        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:  # under the lock cut() takes: no connection slips past a cut
                if not self.open:
                    client.close()
                    upstream.close()
                    continue
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.open = False
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.listener.close()
