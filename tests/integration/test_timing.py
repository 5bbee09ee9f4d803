"""Pages on time with Alertmanager's group lifecycle, against real Redis and real workers.

The trial's case (issue 9): a group whose alert resolved before anything was sent, or whose
resolve was delivered, is gone; the next firing with its labels starts a new group and pages
after group_wait, not at the old group's group_interval tick (which cost a 298 s late page).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.app import Sentinel
from sentinel.config import parse
from tests.helpers import Broker, Worker, wait_for
from tests.integration.harness import wait_firing, wait_live_workers, wait_resolved
from tests.receivers import Receiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("broker", ["redis"], indirect=True),
]

GROUP_WAIT = 10.0
# group_wait + heartbeat expiry (2 x 1 s) + one liveness evaluation (1 s), with room for a
# contended machine; the old group's tick would be minutes away.
PAGE_WITHIN = 25.0


def config_text(broker: Broker, tmp_path: Path, hook: Receiver, group_interval: str) -> str:
    return f"""
celery:
  broker_url: "{broker.url}"
  queues: [{broker.queue}]
  inspect_interval: 5s
  inspect_timeout: 1s
evaluation:
  interval: 15s
storage:
  path: "{tmp_path / "sentinel.db"}"
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    min_workers: 2
    severity: critical
route:
  channels: [hook]
  group_by: [alertname]
  group_wait: {GROUP_WAIT:g}s
  group_interval: {group_interval}
  repeat_interval: 4h
channels:
  hook:
    type: webhook
    url: {hook.url}/alerts
"""


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def run_sentinel() -> Iterator[Callable[[str], Sentinel]]:
    started: list[Sentinel] = []

    def start(text: str) -> Sentinel:
        s = Sentinel(parse(text, env={}))
        s.start(serve=False)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def pages(hook: Receiver) -> list[str]:
    return [body["status"] for body in hook.bodies("/alerts")]


def wait_page(hook: Receiver, n: int, since: float, timeout: float = 60.0) -> float:
    """Seconds from `since` until the n-th notification arrived."""
    wait_for(lambda: len(pages(hook)) >= n, timeout, message=f"notification #{n}")
    return time.monotonic() - since


def signal_worker(w: Worker, sig: signal.Signals) -> None:
    os.killpg(w.proc.pid, sig)


def test_refire_after_a_resolve_before_anything_was_sent_pages_after_group_wait(
    broker: Broker,
    workers: Callable[..., Worker],
    hook: Receiver,
    run_sentinel: Callable[[str], Sentinel],
    tmp_path: Path,
    capsys: Any,
) -> None:
    w1, w2 = workers("w1"), workers("w2")
    # w2 is up but not heard from (stopped) when sentinel starts, and comes back within
    # group_wait: deterministic on a busy machine, unlike a cold start of a second worker.
    signal_worker(w2, signal.SIGSTOP)
    try:
        s = run_sentinel(config_text(broker, tmp_path, hook, "5m"))
        wait_firing(s, "NoLiveWorkers", timeout=30)
        fired = time.monotonic()
        signal_worker(w2, signal.SIGCONT)
        wait_resolved(s, "NoLiveWorkers", timeout=GROUP_WAIT - 2)
        assert time.monotonic() - fired < GROUP_WAIT
    finally:
        signal_worker(w2, signal.SIGCONT)
    # Its flush had nothing to say, and the group ended with it.
    wait_for(lambda: s.dispatcher and not s.dispatcher.groups, 20, message="group ended")
    assert pages(hook) == []

    # 15 s later a worker dies: a new incident, paged after group_wait, not at the old
    # group's 5-minute tick.
    wait_live_workers(s, 2)
    wait_for(lambda: time.monotonic() - fired >= 15, 40, message="15 s into the quiet")
    w1.kill()
    killed = time.monotonic()
    took = wait_page(hook, 1, killed)
    assert pages(hook) == ["firing"]
    with capsys.disabled():
        print(f"\nfirst page of the second incident: {took:.1f}s after the SIGKILL")
    assert took < PAGE_WITHIN


def test_refire_after_a_delivered_resolve_starts_a_new_group(
    broker: Broker,
    workers: Callable[..., Worker],
    hook: Receiver,
    run_sentinel: Callable[[str], Sentinel],
    tmp_path: Path,
    capsys: Any,
) -> None:
    # group_interval is short enough to see the resolve delivered in a test, and long enough
    # that the old group's next tick is far from group_wait after the second kill: the kill
    # follows the delivered resolve within seconds, so that tick would page ~40 s after it,
    # the new group's group_wait ~12 s (PAGE_WITHIN tells the two apart).
    w1, w2 = workers("w1"), workers("w2")
    s = run_sentinel(config_text(broker, tmp_path, hook, "45s"))
    wait_live_workers(s, 2)
    w1.kill()
    first = time.monotonic()
    assert wait_page(hook, 1, first) < PAGE_WITHIN
    workers("w3")
    wait_resolved(s, "NoLiveWorkers", timeout=60)
    wait_page(hook, 2, first, timeout=100)
    assert pages(hook) == ["firing", "resolved"]
    wait_for(lambda: s.dispatcher and not s.dispatcher.groups, 20, message="group ended")

    wait_live_workers(s, 2)
    w2.kill()
    killed = time.monotonic()
    took = wait_page(hook, 3, killed)
    assert pages(hook) == ["firing", "resolved", "firing"]
    with capsys.disabled():
        print(f"\npage after a delivered resolve: {took:.1f}s after the SIGKILL")
    assert took < PAGE_WITHIN
