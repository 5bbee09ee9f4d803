"""Storage faults against a real broker and a real webhook: a full disk (a 2 MiB tmpfs) and a
database file deleted while running. sentinel must keep paging, say why it is not ready, and
put its state back on disk; a restart afterwards must not page again."""

from __future__ import annotations

import errno
import logging
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sentinel.app import Sentinel
from sentinel.config import parse
from tests.helpers import wait_for
from tests.receivers import Receiver

pytestmark = pytest.mark.integration

QUEUE = "sentinel-storage-faults"


def config_text(redis_url: str, db: Path, hook: Receiver) -> str:
    return f"""
celery:
  broker_url: "{redis_url}"
  queues: [{QUEUE}]
  inspect_interval: 1s
  inspect_timeout: 500ms
evaluation:
  interval: 1s
server:
  listen: 127.0.0.1:0
storage:
  path: "{db}"
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: [{QUEUE}]
    threshold: 5
    severity: warning
route:
  channels: [hook]
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
channels:
  hook:
    type: webhook
    url: {hook.url}/alerts
"""


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (as root), unmounted afterwards."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def backlog(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says it is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


def alertnames(hook: Receiver, status: str) -> list[str]:
    return [
        a["labels"]["alertname"]
        for body in hook.bodies()
        if body["status"] == status
        for a in body["alerts"]
        if a["status"] == status
    ]


def readyz(s: Sentinel) -> tuple[int, str]:
    url = f"http://127.0.0.1:{s.api.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_full_disk_still_pages_says_why_and_writes_the_state_back(
    redis_url: str, tmpfs: Path, backlog: redis.Redis
) -> None:
    hook = Receiver()
    db = tmpfs / "sentinel.db"
    s = Sentinel(parse(config_text(redis_url, db, hook), env={}))
    s.start()
    try:
        wait_for(lambda: s.store.probes.get("queues"), 20, message="a queue-depth round")
        filler = fill(tmpfs)
        backlog.lpush(QUEUE, *[b"{}"] * 10)  # a real backlog, measured from the broker

        wait_for(lambda: "QueueBacklog" in alertnames(hook, "firing"), 30, message="the page")
        assert s.db is not None
        health = s.db.health()
        assert not health.healthy and "database or disk is full" in (health.reason or "")
        wait_for(
            lambda: "StorageFailing" in alertnames(hook, "firing"), 30, message="StorageFailing"
        )
        status, body = readyz(s)
        assert status == 503 and "storage:" in body and "database or disk is full" in body
        assert alertnames(hook, "firing").count("QueueBacklog") == 1  # dedup from memory

        filler.unlink()  # space returns
        wait_for(lambda: s.db.health().healthy, 30, message="state written back")
        wait_for(lambda: "StorageFailing" in alertnames(hook, "resolved"), 30, message="resolved")
        conn = sqlite3.connect(db)
        try:
            states = dict(conn.execute("SELECT rule, state FROM alerts").fetchall())
            logged = [r[0] for r in conn.execute("SELECT firing FROM nflog").fetchall()]
        finally:
            conn.close()
        assert states.get("QueueBacklog") == "firing"
        assert any(fps != "[]" for fps in logged)  # the page sent while degraded is on disk
        assert readyz(s)[1].find("storage:") == -1
    finally:
        s.stop()
        hook.close()


def test_a_deleted_database_is_recreated_and_a_restart_does_not_page_again(
    redis_url: str, tmp_path: Path, backlog: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Receiver()
    db = tmp_path / "state" / "sentinel.db"
    config = parse(config_text(redis_url, db, hook), env={})
    backlog.lpush(QUEUE, *[b"{}"] * 10)
    first = Sentinel(config)
    first.start()
    try:
        wait_for(lambda: "QueueBacklog" in alertnames(hook, "firing"), 30, message="the page")
        wait_for(lambda: first.sender.outbox.count() == 0, 10, message="delivery recorded")
        assert first.db is not None
        with caplog.at_level(logging.ERROR, "sentinel.storage"):
            db.unlink()
            # (The new file may get the freed inode number back: count the recovery instead.)
            wait_for(lambda: first.db.recoveries >= 1, 30, message="recreated")
        assert db.exists() and first.db.health().healthy
        assert any("was deleted" in r.getMessage() for r in caplog.records)
    finally:
        first.stop()
    pages = len(hook.bodies())

    second = Sentinel(config)
    evaluations: list[object] = []
    second.on_transitions.append(evaluations.append)
    second.start()
    try:
        wait_for(lambda: len(evaluations) >= 5, 30, message="five evaluations after restart")
        assert second.dispatcher is not None and second.dispatcher.groups
        wait_for(lambda: second.sender.outbox.count() == 0, 10, message="nothing queued")
        assert len(hook.bodies()) == pages  # the firing alert was not paged again
        assert second.book.alerts and all(
            a.state.value == "firing" for a in second.book.alerts.values()
        )
    finally:
        second.stop()
        hook.close()
