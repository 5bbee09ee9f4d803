"""Chaos: `sentinel run` SIGKILLed 12 times (SENTINEL_CHAOS_KILLS=N for more) at random moments
during a flapping incident, with a webhook that holds every request for seconds. At-least-once,
and no more than that: a page is sent twice only when the daemon died before the receiver
answered it, and every firing that lasted long enough to be seen and sent was paged.

The incident is real broker state: each queue's backlog in the private Redis is set and cleared
on a seeded random schedule, so QueueBacklog fires and resolves per queue (one group each) while
the daemon is alive or dead; the schedule does not depend on the daemon at all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import start_daemon, wait_for
from tests.receivers import Receiver, Request

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("SENTINEL_CHAOS_KILLS", "12"))  # 12: ~90 s of the suite
QUEUES = 2  # two groups flapping out of phase: sends of both are in flight at once
HOLD = 1.5  # the webhook answers each request this long after it arrived
EVALUATION = 1.0
GROUP_WAIT = 0.0
TICK = 1.0  # group_interval, and how often the daemon's group timers run
SEED = 11


@dataclass
class Page:
    arrived: float  # wall clock, as startsAt
    body: dict[str, Any]
    answered: float | None = None

    @property
    def queue(self) -> str:
        return str(self.body["groupLabels"]["queue"])

    def identity(self) -> str:
        """What makes a page the same page: a redelivery repeats it exactly."""
        alerts = [
            (a["fingerprint"], a["status"], a["startsAt"], a.get("endsAt"))
            for a in self.body["alerts"]
        ]
        return json.dumps([self.body["groupKey"], self.body["status"], sorted(alerts)])


class SlowWebhook:
    """A local webhook that records each request's arrival and holds it HOLD seconds."""

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.receiver = Receiver(default=self._respond)
        server = self.receiver.server
        report = server.handle_error

        def handle_error(request: Any, client_address: Any) -> None:
            # Answering a daemon that was SIGKILLed meanwhile is this test's point, not an error.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                report(request, client_address)

        server.handle_error = handle_error  # type: ignore[method-assign]

    def _respond(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        page = Page(time.time(), req.json())
        with self.lock:
            self.pages.append(page)
        self.closing.wait(HOLD)  # the receiver "thinking": the sender's request stays open
        page.answered = time.time()
        return 200, {"Content-Type": "application/json"}, b"{}"

    def snapshot(self) -> list[Page]:
        with self.lock:
            return list(self.pages)

    def close(self) -> None:
        self.closing.set()
        self.receiver.close()


@dataclass
class Incident:
    """Sets and clears each queue's backlog on a seeded schedule; records when each fired."""

    client: redis.Redis
    queues: list[str]
    firings: list[tuple[str, float, float]] = field(default_factory=list)  # queue, start, end
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(SEED)
        plan: list[tuple[float, str, bool]] = []
        for i, queue in enumerate(self.queues):
            t = 1.0 + 3.0 * i  # out of phase
            while t < 600:
                plan.append((t, queue, True))
                t += rng.uniform(9.0, 15.0)  # firing for this long
                plan.append((t, queue, False))
                t += rng.uniform(4.0, 7.0)  # then quiet
        plan.sort()
        t0 = time.monotonic()
        started: dict[str, float] = {}
        for at, queue, fire in plan:
            # The incident's own clock: wait for the next scheduled change (or the end).
            if self.stop.wait(max(0.0, t0 + at - time.monotonic())):
                break
            self.apply(queue, fire, started)
        for queue in list(started):
            self.apply(queue, False, started)

    def apply(self, queue: str, fire: bool, started: dict[str, float]) -> None:
        if fire:
            self.client.rpush(queue, "x", "y")  # depth 2 > threshold 1
            started[queue] = time.time()
        else:
            self.client.delete(queue)
            self.firings.append((queue, started.pop(queue), time.time()))


def config_text(redis_url: str, tmp_path: Path, queues: list[str], hook_url: str) -> str:
    return f"""
celery:
  broker_url: "{redis_url}"
  queues: {json.dumps(queues)}
  inspect_interval: 5s
  inspect_timeout: 500ms
evaluation:
  interval: {EVALUATION:g}s
server:
  listen: 127.0.0.1:0
storage:
  path: "{tmp_path / "sentinel.db"}"
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: {json.dumps(queues)}
    threshold: 1
route:
  channels: [hook]
  group_by: [alertname, queue]
  group_wait: {GROUP_WAIT:g}s
  group_interval: 1s
  repeat_interval: 1h
channels:
  hook:
    type: webhook
    url: {hook_url}/alerts
    timeout: 30s
"""


@pytest.fixture
def webhook() -> Iterator[SlowWebhook]:
    hook = SlowWebhook()
    yield hook
    hook.close()


def test_random_sigkills_during_a_flapping_incident(redis_url, webhook, tmp_path) -> None:
    client = redis.Redis.from_url(redis_url)
    queues = [f"chaos-{uuid.uuid4().hex[:6]}-{i}" for i in range(QUEUES)]
    config_path = tmp_path / "rules.yaml"
    config_path.write_text(config_text(redis_url, tmp_path, queues, webhook.receiver.url))
    log_path = tmp_path / "sentinel.log"
    rng = random.Random(SEED)
    incident = Incident(client, queues)
    flapping = threading.Thread(target=incident.run, name="incident", daemon=True)

    kills: list[float] = []
    downtime: list[float] = []
    lives: list[tuple[float, float]] = []  # from "sentinel started" to its SIGKILL
    daemon: subprocess.Popen[bytes] | None = None
    try:
        flapping.start()
        for n in range(KILLS + 1):
            down_since = kills[-1] if kills else time.time()
            daemon = start_daemon(config_path, log_path)
            wait_for(
                lambda n=n: log_path.read_text().count("sentinel started") > n,
                60,
                message=f"start #{n + 1}",
            )
            downtime.append(time.time() - down_since)
            born = time.time()
            if n == KILLS:
                break
            # The chaos schedule: a random moment of this life to die at (past the re-sends a
            # start makes at once, so one cut-off page is not cut off again and again).
            # Every fourth life is long enough to see a firing through, so the check below always
            # has firings to judge however the random moments fall on a loaded machine.
            long_life = n % 4 == 3
            threading.Event().wait(
                rng.uniform(6.0, 8.0) if long_life else rng.uniform(HOLD + 0.5, 5.0)
            )
            kills.append(time.time())
            lives.append((born, kills[-1]))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)

        # The last life sees the incident out: everything resolves and is sent.
        incident.stop.set()
        flapping.join(10)

        def settled() -> bool:
            pages = webhook.snapshot()
            last = {p.queue: p for p in pages}
            return all(
                q in last and last[q].body["status"] == "resolved" and last[q].answered
                for q in queues
            )

        wait_for(settled, 60, message="every queue's resolve delivered")
        lives.append((born, time.time()))
        assert daemon is not None
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
    finally:
        incident.stop.set()
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)

    pages = webhook.snapshot()
    seen: set[str] = set()
    duplicates = 0
    for page in pages:
        duplicates += page.identity() in seen
        seen.add(page.identity())
    # A kill can only make the daemon repeat a page the receiver had not answered yet.
    unanswered_at_kills = sum(
        1 for k in kills for p in pages if p.arrived <= k and (p.answered or k + 1) > k
    )

    # A firing must be paged if one life of the daemon overlapped it long enough to see it
    # (one evaluation), to finish a send of the same group a start re-sends first (one send:
    # per group, in order), to reach the next group tick, and to start this send (group_wait).
    required = EVALUATION + HOLD + TICK + GROUP_WAIT + 0.5
    missed = []
    long_enough = [
        f for f in incident.firings if max(min(f[2], e) - max(f[1], b) for b, e in lives) > required
    ]

    def was_paged(queue: str, end: float) -> bool:
        # Paged = the receiver shows it firing by the time it ended: a page about this firing
        # arrived, or the last page it had was a firing one (a resolve the daemon never got to
        # send before the queue filled again leaves the receiver paged, as Alertmanager would).
        told = [p for p in pages if p.queue == queue and p.arrived <= end]
        late = [p for p in pages if p.queue == queue and end < p.arrived <= end + TICK]
        return bool(told and told[-1].body["status"] == "firing") or bool(
            late and late[0].body["status"] == "firing"
        )

    for queue, start, end in long_enough:
        if not was_paged(queue, end):
            missed.append((queue, round(start, 1), round(end - start, 1)))
    paged_any = sum(was_paged(q, end) for q, _, end in incident.firings)
    paged = len(long_enough) - len(missed)

    print(
        f"\nchaos: {len(kills)} SIGKILLs, {len(incident.firings)} firings ({paged_any} paged) "
        f"({len(long_enough)} overlapping a life by > {required:.1f} s: {paged} paged, "
        f"{len(missed)} missed), "
        f"{len(pages)} pages received, {duplicates} duplicates "
        f"({unanswered_at_kills} sends unanswered at the kills), "
        f"restart {min(downtime):.1f}-{max(downtime):.1f} s"
    )
    (tmp_path / "chaos.json").write_text(
        json.dumps(
            {
                "kills": kills,
                "downtime": downtime,
                "firings": incident.firings,
                "pages": [[p.arrived, p.answered, p.queue, p.identity()] for p in pages],
                "missed": missed,
                "lives": lives,
            }
        )
    )
    assert duplicates <= unanswered_at_kills
    assert duplicates <= len(kills)
    assert missed == []
    assert len(long_enough) >= 3  # the incident really flapped while the daemon was killed
