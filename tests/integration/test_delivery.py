"""Delivery under failure: retryable vs permanent errors against real local servers, and a
SIGKILL between deciding and delivering, with `sentinel run` as a real process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.app import Sentinel
from sentinel.config import parse
from tests.helpers import start_daemon, wait_for
from tests.receivers import Receiver, ok_json
from tests.services import free_port

pytestmark = pytest.mark.integration


def config_text(redis_url: str, tmp_path: Path, channels: str, route_channels: list[str]) -> str:
    # No worker listens on this Redis db, so NoLiveWorkers fires after the first inspect.
    return f"""
celery:
  broker_url: "{redis_url}"
  queues: [sentinel-delivery-test]
  inspect_interval: 1s
  inspect_timeout: 500ms
evaluation:
  interval: 1s
server:
  listen: 127.0.0.1:0
storage:
  path: "{tmp_path / "sentinel.db"}"
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    severity: critical
route:
  channels: {route_channels}
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
channels:
{channels}
"""


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def test_retryable_errors_are_retried_until_delivered_and_a_400_is_given_up(
    redis_url, receivers, tmp_path
):
    hook = Receiver()
    receivers.append(hook)
    # Two 500s, then a 429 asking for a 1 s pause, then success.
    hook.script = [
        ok_json(500, {"error": "boom"}),
        ok_json(503, {"error": "busy"}),
        lambda _r: (429, {"Retry-After": "1"}, b"slow down"),
    ]
    pd = Receiver(default=ok_json(400, {"status": "invalid event", "errors": ["bad key"]}))
    receivers.append(pd)
    refused_port = free_port()  # nothing listens here until later
    channels = f"""
  hook:
    type: webhook
    url: {hook.url}/alerts
  pd:
    type: pagerduty
    routing_key: R0UT1NG
    url: {pd.url}/v2/enqueue
  late:
    type: webhook
    url: http://127.0.0.1:{refused_port}/alerts
"""
    config = parse(config_text(redis_url, tmp_path, channels, ["hook", "pd", "late"]), env={})
    s = Sentinel(config)
    s.start()
    try:
        wait_for(lambda: len(hook.bodies()) >= 4, 40, message="webhook delivered after retries")
        statuses = [b["status"] for b in hook.bodies()]
        assert statuses == ["firing"] * 4
        assert s.sender.outcomes[("hook", "retry")] == 3
        # The receiver has the request before the sender has read the answer and counted it.
        wait_for(lambda: s.sender.outcomes[("hook", "success")] == 1, 10, message="success")

        wait_for(lambda: s.sender.outcomes[("pd", "failed")] >= 1, 20, message="400 given up")
        assert pd.bodies()[0]["event_action"] == "trigger"
        assert s.sender.outcomes[("pd", "success")] == 0

        wait_for(
            lambda: s.sender.outcomes[("late", "retry")] >= 1,
            20,
            message="connection refused retried",
        )
        late = Receiver(port=refused_port)
        receivers.append(late)
        wait_for(lambda: late.bodies(), 40, message="delivered once the receiver came up")
        assert late.bodies()[0]["status"] == "firing"

        # Delivered pages are not sent again on later flushes.
        count = len(hook.bodies())
        s.evaluate()
        s.dispatch()
        s.sender.drain()
        assert len(hook.bodies()) == count
    finally:
        s.stop()


class HoldingReceiver(Receiver):
    """Holds the first request open (the channel 'has not answered yet')."""

    def __init__(self, port: int = 0) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

        def hold(_req):  # type: ignore[no-untyped-def]
            self.arrived.set()
            self.release.wait(30)
            return 200, {}, b"{}"

        super().__init__(port)
        self.script = [hold]


def test_sigkill_before_the_channel_answers_redelivers_once(redis_url, receivers, tmp_path):
    hook = HoldingReceiver()
    receivers.append(hook)
    config_path = tmp_path / "rules.yaml"
    config_path.write_text(
        config_text(
            redis_url,
            tmp_path,
            f"""
  hook:
    type: webhook
    url: {hook.url}/alerts
""",
            ["hook"],
        )
    )
    log_path = tmp_path / "sentinel.log"

    first = start_daemon(config_path, log_path)
    try:
        assert hook.arrived.wait(40), log_path.read_text()
        first.send_signal(signal.SIGKILL)  # decided, sent, but not yet acknowledged
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    hook.release.set()
    assert len(hook.bodies()) == 1

    second = start_daemon(config_path, log_path)
    try:
        wait_for(lambda: len(hook.bodies()) >= 2, 40, message="re-delivered after restart")
        assert hook.bodies()[1]["status"] == "firing"
        assert hook.bodies()[1]["groupKey"] == hook.bodies()[0]["groupKey"]
        wait_for(
            lambda: b"notification sent to hook" in log_path.read_bytes(),
            10,
            message="delivery recorded",
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        if second.poll() is None:
            second.kill()

    # A third start must not page again: the delivery is in the notification log.
    third = start_daemon(config_path, log_path)
    try:
        wait_for(
            lambda: log_path.read_text().count("sentinel started") >= 3, 20, message="third start"
        )
        # Several flush cycles (group_interval 1s) pass without a new request.
        with pytest.raises(AssertionError):
            wait_for(lambda: len(hook.bodies()) > 2, 6, message="no duplicate page")
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(15)
    assert len(hook.bodies()) == 2
