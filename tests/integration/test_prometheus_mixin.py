"""A real Prometheus scrapes sentinel's /metrics, and celery-mixin's queries return data: the
`queue_name` dropdown, failures by exception, and its three alert expressions (read in
danihodovic/celery-exporter's celery-mixin; written here as queries of our own)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.api.server import ApiServer
from sentinel.app import Sentinel
from sentinel.config import parse
from tests.helpers import wait_for
from tests.services import free_port, unavailable

pytestmark = pytest.mark.integration

CONFIG = """
celery:
  broker_url: redis://127.0.0.1:1/0
storage:
  path: "{db}"
server:
  listen: 127.0.0.1:0
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
"""

PROMETHEUS = """
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: celery-sentinel
    static_configs:
      - targets: ["{target}"]
"""

_SELECT = '{job=~".*celery.*", queue_name!~"None", name!~"None"}'
_FAILED = f"sum by (job, queue_name, name) (increase(celery_task_failed_total{_SELECT}[10m]))"
_SUCCEEDED = f"sum by (job, queue_name, name) (increase(celery_task_succeeded_total{_SELECT}[10m]))"

# celery-mixin, by what each panel or alert needs from the labels.
QUERIES = {
    # the dashboards' dropdowns: label_values(celery_task_sent_total, name) and by queue_name
    "task dropdown": "count by (name) (celery_task_sent_total)",
    "queue_name dropdown": 'count by (queue_name) (celery_task_received_total{queue_name!=""})',
    # "Task Exceptions" table
    "failed by exception": "round(sum by (name, exception) "
    '(increase(celery_task_failed_total{job=~".*celery.*"}[1m])) > 0)',
    # CeleryTaskHighFailRate
    "high fail rate": f"{_FAILED} / ({_FAILED} + {_SUCCEEDED}) * 100 > 5",
    # CeleryHighQueueLength
    "high queue length": "sum by (job, queue_name) "
    '(celery_queue_length{job=~".*celery.*", queue_name!~"None"}) > 100',
    # CeleryWorkerDown
    "worker down": 'celery_worker_up{job=~".*celery.*"} == 0',
    # "Tasks Runtime" p50
    "runtime p50": "histogram_quantile(0.50, sum by (name, job, le) "
    '(rate(celery_task_runtime_bucket{job=~".*celery.*"}[1m])))',
}


def query(url: str, expr: str) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Sentinel, ApiServer]]:
    sentinel = Sentinel(parse(CONFIG.format(db=tmp_path / "sentinel.db"), env={}))
    server = ApiServer(sentinel.api_ports(), sentinel.metrics_registry())
    server.start()
    yield sentinel, server
    server.stop()
    if sentinel.db is not None:
        sentinel.db.close()


@pytest.fixture
def prometheus(tmp_path: Path, served: tuple[Sentinel, ApiServer]) -> Iterator[str]:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if binary is None:
        unavailable("prometheus is not installed (apt-get install prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS.format(target=f"127.0.0.1:{served[1].port}"))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url), 60, message="prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def ev(kind: str, uuid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": uuid, "timestamp": time.time(), **fields}


def test_celery_mixin_queries_return_data(
    served: tuple[Sentinel, ApiServer], prometheus: str
) -> None:
    sentinel, _ = served
    store = sentinel.store
    now = time.time()
    store.apply_events(
        [
            # alive for the whole test: 2 x freq
            {"type": "worker-heartbeat", "hostname": "w1@h1", "freq": 120.0, "active": 0}
            | {"timestamp": now},
            # a worker that stopped beating a minute ago: dead, still listed
            {"type": "worker-heartbeat", "hostname": "gone@h9", "freq": 2.0, "active": 0}
            | {"timestamp": now - 60},
        ],
        now,
    )
    store.workers["gone@h9"].heartbeat_at = now - 60
    store.set_queue_depths({"billing": (500, 1)}, {}, now)

    def traffic(n: int, fail: bool) -> None:
        events = []
        for i in range(n):
            u = f"{'f' if fail else 's'}{time.monotonic_ns()}-{i}"
            events += [
                ev("task-sent", u, name="app.pay", hostname="gen1@web", queue="billing"),
                ev("task-received", u, name="app.pay", hostname="w1@h1"),
                ev("task-started", u, hostname="w1@h1"),
                ev("task-failed", u, hostname="w1@h1", exception="KeyError('x')", runtime=0.2)
                if fail
                else ev("task-succeeded", u, hostname="w1@h1", runtime=0.05),
            ]
        store.apply_events(events, time.time())

    traffic(20, fail=False)
    # Two scrapes before the failures, so increase() and rate() see them happen.
    wait_for(lambda: query(prometheus, "up == 1"), 30, message="prometheus to scrape sentinel")
    wait_for(
        lambda: query(prometheus, "count_over_time(celery_task_sent_total[1m]) >= 2"),
        30,
        message="two scrapes",
    )
    traffic(5, fail=True)
    # A new series' first sample is no increase (to Prometheus, nor with celery-exporter):
    # failures that go on after it was scraped are.
    wait_for(
        lambda: query(prometheus, 'celery_task_failed_total{exception="KeyError"}'),
        30,
        message="the first failures scraped",
    )
    traffic(5, fail=True)
    traffic(20, fail=False)
    missing = dict(QUERIES)

    def all_answer() -> bool:
        for what, expr in list(missing.items()):
            if query(prometheus, expr):
                del missing[what]
        return not missing

    try:
        wait_for(all_answer, 60, interval=0.5, message="celery-mixin's queries")
    except AssertionError as e:
        raise AssertionError(f"no data for {missing}") from e
    rows = query(prometheus, QUERIES["failed by exception"])
    assert [r["metric"] for r in rows] == [{"name": "app.pay", "exception": "KeyError"}], rows
    queues = {r["metric"]["queue_name"] for r in query(prometheus, QUERIES["queue_name dropdown"])}
    assert queues == {"billing"}
    down = query(prometheus, QUERIES["worker down"])
    assert [r["metric"]["hostname"] for r in down] == ["gone@h9"], down
