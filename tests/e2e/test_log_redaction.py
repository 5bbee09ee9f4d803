"""`--log-level debug` shows every request urllib3 makes, and no credential in any of them.

A real `sentinel notify-test` process sends through local receivers (tests/receivers.py) whose
URLs carry a query token and userinfo, and a PagerDuty routing key in the body.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.receivers import Receiver, ok_json

pytestmark = pytest.mark.e2e

HOOK_TOKEN = "HOOKQUERYSECRET"
HOOK_PASSWORD = "HOOKUSERINFOSECRET"
ROUTING_KEY = "R0UTINGKEYSECRET"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(default=ok_json(202, {"status": "success", "dedup_key": "k"}))
    yield r
    r.close()


def notify_test(config: Path, channel: str, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "sentinel", "notify-test", "-c", str(config), channel),
            *("--log-level", "debug", "--log-format", fmt),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_log_of_a_webhook_send_carries_no_credential(
    tmp_path: Path, receiver: Receiver, fmt: str
) -> None:
    host = receiver.url.removeprefix("http://")
    config = tmp_path / "rules.yaml"
    config.write_text(f"""
storage: {{path: "{tmp_path / "s.db"}"}}
channels:
  hook:
    type: webhook
    url: "http://sentinel:{HOOK_PASSWORD}@{host}/hook?token={HOOK_TOKEN}&team=ops"
  pager:
    type: pagerduty
    routing_key: "{ROUTING_KEY}"
    url: "{receiver.url}/v2/enqueue?sig={HOOK_TOKEN}"
""")
    for channel in ("hook", "pager"):
        result = notify_test(config, channel, fmt)
        assert result.returncode == 0, result.stdout + result.stderr
        log = result.stderr
        # urllib3 did log the request line, with the query string, at debug ...
        assert "/hook?token=***&team=ops" in log or "/v2/enqueue?sig=***" in log, log
        # ... and no credential made it through, in the message, an argument or a traceback.
        for secret in (HOOK_TOKEN, HOOK_PASSWORD, ROUTING_KEY):
            assert secret not in log, log
            assert secret not in result.stdout
    paths = [r.path for r in receiver.requests]
    assert f"/hook?token={HOOK_TOKEN}&team=ops" in paths  # the real request kept its token
    assert receiver.requests[-1].json()["routing_key"] == ROUTING_KEY
