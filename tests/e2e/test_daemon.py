"""`sentinel` as an operator runs it: check, run, SIGHUP reloads, silences from the CLI,
SIGTERM. Real processes, real Redis, the HTTP API on a free port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import BACKLOG, ENV, NO_WORKERS, Daemon
from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.e2e

CLEAN_ENV = {
    k: v
    for k, v in ENV.items()
    if not k.startswith(("SENTINEL", "SLACK", "PAGERDUTY", "SMTP", "WEBHOOK", "CELERY_"))
}


def sentinel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        cwd=ROOT,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_accepts_the_example_config_on_a_clean_environment() -> None:
    result = sentinel("check", "-c", "rules.example.yaml", env=CLEAN_ENV)
    assert result.returncode == 0, result.stderr
    kinds = {"no_live_workers", "queue_backlog", "failure_rate", "idle_worker", "task_latency"}
    assert kinds <= set(result.stdout.split())
    assert {"slack", "pagerduty", "email", "webhook", "log"} <= set(result.stdout.split())


def test_check_lists_every_error_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("""
celery: {inspect_interval: soon}
rules:
  - {name: A, kind: queue_backlog, threshold: 0}
  - {name: B, kind: failure_rate, threshold: 150%, colour: red}
""")
    result = sentinel("check", "-c", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for line in (
        "celery.inspect_interval:",
        "rules[0].threshold: must be > 0",
        "rules[1].threshold:",
        "rules[1].colour: unknown key",
    ):
        assert line in result.stderr, result.stderr


@pytest.fixture
def daemon(tmp_path: Path, redis_url: str) -> Iterator[Daemon]:
    d = Daemon(tmp_path, NO_WORKERS, redis_url)
    yield d
    d.stop()


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_when_invalid(daemon: Daemon):
    wait_for(lambda: daemon.firing("NoLiveWorkers"), 30, message="NoLiveWorkers firing")
    fired = daemon.firing("NoLiveWorkers")[0]

    daemon.write(NO_WORKERS + BACKLOG)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded: 2 rule(s)" in daemon.log(), 15, message="reload")
    names = {r["name"] for r in daemon.get("/api/v1/rules")}  # type: ignore[union-attr]
    assert names == {"NoLiveWorkers", "QueueBacklog"}
    # Alert state survives the reload: same alert, same start, still firing.
    assert daemon.firing("NoLiveWorkers")[0]["startsAt"] == fired["startsAt"]

    daemon.config.write_text("rules: [{name: X, kind: nonsense}]\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in daemon.log(), 15, message="invalid reload reported")
    assert "rules[0].kind" in daemon.log()
    assert daemon.proc.poll() is None
    names = {r["name"] for r in daemon.get("/api/v1/rules")}  # type: ignore[union-attr]
    assert names == {"NoLiveWorkers", "QueueBacklog"}

    # A rule that disappears resolves its alerts.
    daemon.write(BACKLOG)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: not daemon.firing("NoLiveWorkers"), 15, message="removed rule resolved")
    assert "NoLiveWorkers" in daemon.log() and "firing -> resolved" in daemon.log()


def test_silence_cli_round_trip_through_the_api(daemon: Daemon):
    wait_for(lambda: daemon.firing("NoLiveWorkers"), 30, message="NoLiveWorkers firing")
    refused = sentinel(
        "silence", "add", "--api", daemon.url, "--token", "wrong", "alertname=NoLiveWorkers"
    )
    assert refused.returncode != 0 and "401" in refused.stderr

    added = sentinel(
        "silence",
        "add",
        "--api",
        daemon.url,
        "--token",
        "s3cret",
        "alertname=NoLiveWorkers",
        'severity=~"crit.*"',
        "--duration",
        "2h",
        "--comment",
        "maintenance",
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    listed = sentinel("silence", "list", "--api", daemon.url)
    assert silence_id in listed.stdout and "active" in listed.stdout
    assert 'severity=~"crit.*"' in listed.stdout
    wait_for(
        lambda: daemon.firing("NoLiveWorkers")[0]["silencedBy"] == [silence_id],
        10,
        message="alert shows silencedBy",
    )

    expired = sentinel("silence", "expire", "--api", daemon.url, "--token", "s3cret", silence_id)
    assert expired.returncode == 0, expired.stderr
    listed = sentinel("silence", "list", "--api", daemon.url, "--all")
    assert "expired" in listed.stdout
    assert silence_id not in sentinel("silence", "list", "--api", daemon.url).stdout


def test_sigterm_exits_cleanly_within_ten_seconds(daemon: Daemon):
    wait_for(lambda: daemon.firing("NoLiveWorkers"), 30, message="NoLiveWorkers firing")
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    assert time.monotonic() - started < 10
    assert "sentinel stopped" in daemon.log()
