"""`sentinel eval` against a real broker: it tells an unreachable broker apart (exit 1, one line),
and on a healthy cluster prints the table and nothing that reads like a page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, Broker, Worker
from tests.services import free_port

pytestmark = pytest.mark.integration


def config(broker_url: str, queue: str) -> str:
    # min_workers 5: with one worker up the rule fires at once (for: 0s), which a daemon would
    # log as a WARNING "inactive -> firing"; eval must only show it in the table.
    return f"""\
celery:
  broker_url: {broker_url}
  queues: [{queue}]
  inspect_timeout: 2s
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    min_workers: 5
    severity: critical
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 1000
"""


def sentinel_eval(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "eval", "-c", str(path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_broker_exits_1_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    path = tmp_path / "rules.yaml"
    path.write_text(config(f"redis://127.0.0.1:{port}/0", "celery"))
    proc = sentinel_eval(path, "--listen", "1")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sentinel eval: cannot reach the broker redis://127.0.0.1:{port}/0")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_healthy_run_prints_the_table_only(
    broker: Broker, workers: Callable[..., Worker], tmp_path: Path
) -> None:
    worker = workers("w1")
    path = tmp_path / "rules.yaml"
    path.write_text(config(broker.url, broker.queue))
    proc = sentinel_eval(path, "--listen", "3")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0] == ["RULE", "LABELS", "VALUE", "THRESHOLD", "STATE"]
    # The worker was seen (1 alive of 5 wanted): the rule fired, in the table only.
    assert ["NoLiveWorkers", "-", "1", "5", "firing"] in rows, proc.stdout
    assert any(r[:2] == ["QueueBacklog", f"queue={broker.queue}"] for r in rows), proc.stdout
    assert "not connected" not in proc.stderr, proc.stderr
    assert "-> firing" not in proc.stderr and "-> pending" not in proc.stderr, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert worker.proc.poll() is None
