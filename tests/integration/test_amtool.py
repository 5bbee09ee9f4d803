"""The real `amtool` (Debian's prometheus-alertmanager package) against sentinel's /api/v2:
silences added, queried and expired, alerts queried with their filters, the route tree tested,
each exiting 0 with the expected output. Never mocked: a missing amtool skips the tests
locally and fails them under CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sentinel.api.server import ApiServer
from sentinel.app import Sentinel
from sentinel.config import parse
from tests.services import unavailable

pytestmark = pytest.mark.integration

TOKEN = "amtool-s3cret"
ROUTES = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['queue=~"billing.*"', 'env!="dev"']
      receiver: billing
      routes:
        - matchers: [team=db]
          receiver: dba
    - match: {severity: warning}
      match_re: {queue: "re(ports|funds)"}
      receiver: reports
"""
CONFIG = """
celery: {{broker_url: "memory://"}}
storage: {{path: "{path}"}}
server: {{listen: 127.0.0.1:0, token: "{token}", external_url: "https://sentinel.example.com/x"}}
rules:
  - {{name: NoLiveWorkers, kind: no_live_workers, severity: critical}}
  - {{name: NoWorkersWarning, kind: no_live_workers, severity: warning}}
  - {{name: NoWorkersInfo, kind: no_live_workers, severity: info}}
inhibit_rules:
  - source_matchers: [alertname=NoLiveWorkers]
    target_matchers: [alertname=NoWorkersInfo]
"""
CHANNELS = """
channels:
  default: {type: log}
  pager: {type: log}
  billing: {type: log}
  dba: {type: log}
  reports: {type: log}
"""


@dataclass
class Amtool:
    binary: str
    url: str
    http_config: Path
    home: Path  # amtool also reads $HOME/.config/amtool/config.yml: none of the user's

    def __call__(self, *args: str, auth: bool = True, check: bool = True) -> str:
        cmd = [self.binary, f"--alertmanager.url={self.url}", *args]
        if auth:
            cmd.insert(1, f"--http.config.file={self.http_config}")
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "")}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
        if check:
            assert done.returncode == 0, (cmd, done.stdout, done.stderr)
        return done.stdout if check else done.stdout + done.stderr


@pytest.fixture(scope="module")
def amtool_binary() -> str:
    found = shutil.which("amtool")
    if found is None:
        unavailable(
            "amtool is not installed (Debian: prometheus-alertmanager; scripts/test-services)"
        )
    assert found is not None
    return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Sentinel, ApiServer]]:
    text = CONFIG.format(path=tmp_path / "sentinel.db", token=TOKEN) + CHANNELS + ROUTES
    sentinel = Sentinel(parse(text, env={}))
    server = ApiServer(sentinel.api_ports(), sentinel.metrics_registry())
    server.start()
    # An inspect round that reached the broker and found nobody: every rule fires.
    sentinel.store.probe_ok("inspect", sentinel.clock.now())
    sentinel.evaluate()
    yield sentinel, server
    server.stop()
    sentinel.stop()


@pytest.fixture
def amtool(amtool_binary: str, daemon: tuple[Sentinel, ApiServer], tmp_path: Path) -> Amtool:
    # How a user gives amtool the bearer token: --http.config.file (Prometheus's HTTP client
    # config), here with `authorization: {credentials: ...}` (type Bearer by default).
    http_config = tmp_path / "amtool-http.yml"
    http_config.write_text(yaml.safe_dump({"authorization": {"credentials": TOKEN}}))
    return Amtool(amtool_binary, f"http://127.0.0.1:{daemon[1].port}", http_config, tmp_path)


def names(table: str) -> list[str]:
    """The first column of an amtool table, without its header."""
    return sorted(line.split()[0] for line in table.splitlines()[1:] if line.strip())


def test_silence_add_query_expire(amtool: Amtool) -> None:
    silence_id = amtool("silence", "add", "alertname=NoLiveWorkers", "--comment=maintenance")
    silence_id = silence_id.strip()
    assert len(silence_id) == 36  # a UUID, as Alertmanager's
    table = amtool("silence", "query")
    assert silence_id in table and 'alertname="NoLiveWorkers"' in table and "maintenance" in table
    assert amtool("silence", "query", "-q").split() == [silence_id]
    assert amtool("silence", "query", "-q", "alertname=NoLiveWorkers").split() == [silence_id]
    assert amtool("silence", "query", "-q", "alertname=Other").split() == []
    assert amtool("silence", "query", "-q", "--expired").split() == []

    amtool("silence", "expire", silence_id)
    assert amtool("silence", "query", "-q").split() == []
    assert amtool("silence", "query", "-q", "--expired").split() == [silence_id]


def test_silence_add_takes_regex_and_negative_matchers(amtool: Amtool) -> None:
    silence_id = amtool(
        "silence", "add", 'alertname=~"NoWorkers.*"', "severity!=info", "-c", "x"
    ).strip()
    out = json.loads(amtool("silence", "query", "-o", "json"))
    [silence] = [s for s in out if s["id"] == silence_id]
    assert sorted((m["name"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]) == [
        ("alertname", True, True),
        ("severity", False, False),
    ]
    assert names(amtool("alert", "query")) == ["NoLiveWorkers"]  # the warning is silenced


def test_writes_need_the_token(amtool: Amtool) -> None:
    out = amtool("silence", "add", "alertname=NoLiveWorkers", "-c", "x", auth=False, check=False)
    assert "401" in out or "Unauthorized" in out.lower() or "bearer" in out.lower(), out
    assert amtool("silence", "query", "-q", auth=False).split() == []  # reads stay open


def test_alert_query_and_its_filters(amtool: Amtool, daemon: tuple[Sentinel, ApiServer]) -> None:
    # amtool asks for active alerts unless told otherwise; --inhibited / --silenced alone ask
    # for those only (active=false), as Alertmanager filters them.
    assert names(amtool("alert", "query")) == ["NoLiveWorkers", "NoWorkersWarning"]
    assert names(amtool("alert", "query", "--inhibited")) == ["NoWorkersInfo"]
    everything = ["NoLiveWorkers", "NoWorkersInfo", "NoWorkersWarning"]
    assert names(amtool("alert", "query", "--active", "--inhibited")) == everything
    assert names(amtool("alert", "query", "severity=critical")) == ["NoLiveWorkers"]
    assert names(amtool("alert", "query", 'alertname=~"NoWorkers.*"')) == ["NoWorkersWarning"]
    assert names(amtool("alert", "query", "--receiver=pag.*")) == ["NoLiveWorkers"]

    amtool("silence", "add", "alertname=NoWorkersWarning", "--comment=deploy")
    assert names(amtool("alert", "query")) == ["NoLiveWorkers"]
    silenced = amtool("alert", "query", "--silenced")
    assert names(silenced) == ["NoWorkersWarning"]
    assert silenced.splitlines()[1].split()[-1] == "suppressed"

    sentinel = daemon[0]
    book = {a.labels["alertname"]: a for a in sentinel.book.alerts.values()}
    alerts = json.loads(amtool("alert", "query", "-a", "-s", "-i", "-o", "json"))
    assert {a["labels"]["alertname"] for a in alerts} == set(book)
    for a in alerts:
        assert a["fingerprint"] == book[a["labels"]["alertname"]].fingerprint
        assert len(a["fingerprint"]) == 16
        assert a["generatorURL"] == f"https://sentinel.example.com/x/#alert-{a['fingerprint']}"
    by_name = {a["labels"]["alertname"]: a for a in alerts}
    assert by_name["NoWorkersInfo"]["status"]["inhibitedBy"] == [book["NoLiveWorkers"].fingerprint]
    assert [r["name"] for r in by_name["NoLiveWorkers"]["receivers"]] == ["pager"]


def test_config_show_is_an_alertmanager_config(amtool: Amtool) -> None:
    config = yaml.safe_load(amtool("config", "show"))
    assert config["route"]["receiver"] == "default"
    assert config["route"]["routes"][0]["matchers"] == ['severity="critical"']
    assert {r["name"] for r in config["receivers"]} >= {"default", "pager", "billing", "dba"}
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="NoLiveWorkers"'],
            "target_matchers": ['alertname="NoWorkersInfo"'],
        }
    ]


LABEL_SETS = [
    ["alertname=A"],
    ["severity=critical"],
    ["severity=critical", "queue=billing-eu"],
    ["queue=billing", "env=dev"],
    ["queue=billing", "env=prod", "team=db"],
    ["queue=billing", "team=web"],
    ["severity=warning", "queue=reports"],
    ["severity=warning", "queue=reportsX"],
    ["severity=critical", "queue=refunds", "team=db"],
]


def alertmanager_yml(tmp_path: Path) -> Path:
    """The same tree as an alertmanager.yml, each receiver a do-nothing webhook."""
    tree = yaml.safe_load(ROUTES)
    receivers = ["default", "pager", "billing", "dba", "reports"]
    config = {
        "route": tree["route"],
        "receivers": [
            {"name": r, "webhook_configs": [{"url": "http://127.0.0.1:1/"}]} for r in receivers
        ],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("labels", LABEL_SETS, ids=[" ".join(ls) for ls in LABEL_SETS])
def test_config_routes_test_agrees_with_sentinel_route_test(
    amtool: Amtool, tmp_path: Path, labels: list[str]
) -> None:
    am_file = alertmanager_yml(tmp_path)
    sentinel_file = tmp_path / "rules.yaml"
    sentinel_file.write_text(CHANNELS + ROUTES)
    expected = amtool("config", "routes", "test", f"--config.file={am_file}", *labels).strip()
    # amtool can also read the tree from sentinel itself (config.original of /api/v2/status).
    assert amtool("config", "routes", "test", *labels).strip() == expected
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "route", "test", "-c", str(sentinel_file), *labels],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == expected
