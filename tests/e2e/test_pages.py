"""End to end: `sentinel run` as a process, a real Redis, a real `celery worker`, and real
local servers speaking Slack's Web API, PagerDuty Events v2, SMTP and a webhook receiver.

A task starts failing half the time -> one page per channel; the fix -> one resolve per channel,
threaded or updated in place where the channel allows it. Asserted as a timeline of what each
server received.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.helpers import ROOT, wait_for
from tests.receivers import Receiver, ok_json
from tests.services import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Inbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box, port = Inbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def slack_api() -> Receiver:
    counter = iter(range(1, 1000))

    def respond(req):  # type: ignore[no-untyped-def]
        return ok_json(
            200, {"ok": True, "channel": "C0ALERTS", "ts": f"1700000000.{next(counter):06d}"}
        )(req)

    return Receiver(default=respond)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_failing_task_pages_each_channel_once_and_the_fix_resolves(
    broker, workers, producer, inbox, tmp_path: Path
):
    box, smtp_port = inbox
    slack, pagerduty, hook = (
        slack_api(),
        Receiver(default=ok_json(202, {"status": "success"})),
        Receiver(),
    )
    workers("w1")
    config = tmp_path / "rules.yaml"
    config.write_text(f"""
celery:
  broker_url: "{broker.url}"
  queues: ["{broker.queue}"]
  inspect_interval: 2s
  inspect_timeout: 1s
evaluation:
  interval: 1s
storage:
  path: "{tmp_path / "sentinel.db"}"
server:
  listen: 127.0.0.1:0
limits:
  bucket: 1s
rules:
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["tests.flaky"]
    window: 6s
    threshold: 20%
    min_count: 6
    severity: critical
route:
  channels: [pd, slack, mail, hook]
  group_by: [alertname, task]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
channels:
  pd:
    type: pagerduty
    routing_key: R0UT1NGKEY
    url: {pagerduty.url}/v2/enqueue
  slack:
    type: slack
    token: xoxb-test
    channel: "#celery-alerts"
    api_url: {slack.url}/api/
  mail:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    starttls: false
    from: sentinel@example.com
    to: [oncall@example.com]
  hook:
    type: webhook
    url: {hook.url}/alerts
""")
    log_path = tmp_path / "sentinel.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "run", "-c", str(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        wait_for(
            lambda: b"event stream subscribed" in log_path.read_bytes(),
            30,
            message="sentinel subscribed",
        )
        for i in range(12):
            producer.send_task("tests.flaky", args=(i,))
        wait_for(
            lambda: pagerduty.bodies() and hook.bodies() and box.messages and slack.bodies(),
            40,
            message="pages on every channel",
        )
        # The fix: the task now succeeds; once the failures leave the window, all resolve.
        for i in range(0, 24, 2):
            producer.send_task("tests.flaky", args=(i,))
        wait_for(
            lambda: (
                len(pagerduty.bodies()) >= 2
                and len(hook.bodies()) >= 2
                and len(box.messages) >= 2
                and len(slack.bodies()) >= 3
            ),
            60,
            message="resolves on every channel",
        )
        time.sleep(2)  # a few more flush cycles: nothing further may arrive
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        for r in (slack, pagerduty, hook):
            r.close()
    logs = log_path.read_text()

    trigger, resolve = pagerduty.bodies()
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["routing_key"] == "R0UT1NGKEY"
    assert trigger["payload"]["severity"] == "critical"
    assert "tests.flaky" in trigger["payload"]["summary"] or "tests.flaky" in str(
        trigger["payload"]["custom_details"]
    )

    firing, resolved = hook.bodies()
    assert (firing["version"], firing["status"], resolved["status"]) == ("4", "firing", "resolved")
    assert firing["groupKey"] == resolved["groupKey"]
    assert firing["alerts"][0]["labels"]["task"] == "tests.flaky"
    assert firing["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["fingerprint"] == firing["alerts"][0]["fingerprint"]

    first, second = box.messages
    assert "FIRING" in first["Subject"] and "RESOLVED" in second["Subject"]
    assert second["In-Reply-To"] == first["Message-ID"]
    assert {p.get_content_type() for p in second.iter_parts()} == {"text/plain", "text/html"}

    paths = [r.path for r in slack.requests]
    assert paths == ["/api/chat.postMessage", "/api/chat.update", "/api/chat.postMessage"], paths
    post, update, reply = (r.json() for r in slack.requests)
    assert "thread_ts" not in post
    assert update["ts"] == reply["thread_ts"] == "1700000000.000001"
    assert "TaskFailureRate" in logs and "firing" in logs
