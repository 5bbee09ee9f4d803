"""`sentinel demo` end to end: real workers on a filesystem:// broker, every rule kind fires,
the killed worker's alert resolves once it is back, pages arrive as Alertmanager v4 JSON, and
nothing the demo started is left running. Needs no Redis or RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sentinel.config import load
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

KINDS = {
    "no_live_workers",
    "queue_backlog",
    "failure_rate",
    "idle_worker",
    "task_latency",
    "stuck_task",
    "lost_task",
    "periodic_task",
    "queue_unconsumed",
}


def processes_referencing(folder: Path) -> list[str]:
    """Processes whose command line, working directory or environment mention `folder`."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in cmdline or needle in cwd or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel",
            "demo",
            "--duration",
            "90s",
            "--no-live",
            "--dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=160,
    )
    leftovers = processes_referencing(folder)
    webhook = folder / "webhook.jsonl"
    return {
        "folder": folder,
        "proc": proc,
        "leftovers": leftovers,
        "summary": json.loads((folder / "summary.json").read_text())
        if (folder / "summary.json").exists()
        else {},
        "payloads": [json.loads(line)["payload"] for line in webhook.read_text().splitlines()]
        if webhook.exists()
        else [],
    }


def test_runs_to_the_end(demo: dict[str, Any]) -> None:
    proc = demo["proc"]
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "duration reached; stopping" in proc.stdout
    # A worker crash or a broken event stream would show here (kombu#1551 did both).
    assert "exited with code" not in proc.stdout, proc.stdout
    assert "event stream lost" not in proc.stdout, proc.stdout


def test_every_rule_kind_fires_within_a_minute(demo: dict[str, Any]) -> None:
    config = load(demo["folder"] / "rules.yaml")
    kinds = {rule.name: rule.kind for rule in config.rules}
    assert set(kinds.values()) == KINDS
    first: dict[str, float] = {}
    for alert in demo["summary"]["alerts"]:
        kind = kinds[alert["alertname"]]
        first[kind] = min([first.get(kind, 1e9), *alert["fired"]])
    assert set(first) == KINDS, demo["proc"].stdout
    assert all(t <= 60 for t in first.values()), first
    lines = demo["proc"].stdout.splitlines()
    for name in kinds:
        assert any(name in line and "-> firing" in line for line in lines), name
    assert "  rule kinds fired: 9 of 9" in lines


def test_the_killed_workers_alert_resolves_after_it_comes_back(demo: dict[str, Any]) -> None:
    scenario = demo["summary"]["scenario"]
    killed = next(s["at"] for s in scenario if s["action"] == "kill")
    revived = next(s["at"] for s in scenario if s["action"] == "revive")
    (alert,) = [a for a in demo["summary"]["alerts"] if a["alertname"] == "NoLiveWorkers"]
    assert killed < alert["fired"][0] < revived, (scenario, alert)
    assert alert["resolved"] and alert["resolved"][0] > revived, (scenario, alert)
    resolved_pages = [
        p
        for p in demo["payloads"]
        if p["status"] == "resolved" and p["groupLabels"].get("alertname") == "NoLiveWorkers"
    ]
    assert resolved_pages, demo["payloads"]


def test_the_webhook_got_alertmanager_v4_payloads(demo: dict[str, Any]) -> None:
    payloads = demo["payloads"]
    assert payloads
    names = set()
    for p in payloads:
        assert p["version"] == "4"
        assert p["status"] in ("firing", "resolved")
        assert p["receiver"] == "pager"
        assert p["groupKey"]
        assert p["alerts"]
        for a in p["alerts"]:
            assert a["status"] in ("firing", "resolved")
            assert a["labels"]["alertname"] == p["groupLabels"]["alertname"]
            assert {"annotations", "startsAt", "endsAt", "fingerprint"} <= set(a)
        names.add(p["groupLabels"]["alertname"])
    assert names == {
        "NoLiveWorkers",
        "QueueBacklog",
        "TaskFailureRate",
        "IdleWorker",
        "SlowTasks",
        "StuckTask",
        "LostTask",
        "BeatMissed",
        "QueueUnconsumed",
    }
    assert demo["summary"]["webhook_payloads"] == len(payloads)
    assert demo["summary"]["sent"]["pager"]["firing"] >= 5
    assert demo["summary"]["sent"]["log"]["firing"] >= 5


def test_no_process_outlives_the_demo(demo: dict[str, Any]) -> None:
    assert demo["leftovers"] == []
    assert demo["summary"]["killed_on_stop"] == []


# -- every way a demo can end stops everything it started -------------------------------------


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Any:
    """The demo's folder; whatever a failing test leaves running there is killed afterwards."""
    folder = tmp_path / "demo"
    yield folder
    for line in processes_referencing(folder):
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def demo_argv(folder: Path, *extra: str) -> list[str]:
    # Long enough that only the interruption under test can end the run.
    return [
        sys.executable,
        "-m",
        "sentinel",
        "demo",
        "--duration",
        "5m",
        "--dir",
        str(folder),
        *extra,
    ]


def traffic_started(folder: Path) -> bool:
    # The producer is started last, once sentinel sees both workers: every child is up.
    return (folder / "logs" / "producer.log").exists()


def test_head_closing_the_pipe_stops_every_child(no_leftovers: Path) -> None:
    folder = no_leftovers
    command = " ".join(shlex.quote(a) for a in demo_argv(folder, "--no-live")) + " | head -5"
    proc = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=180, check=False
    )
    assert len(proc.stdout.splitlines()) == 5, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert processes_referencing(folder) == []
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["killed_on_stop"] == []


class Terminal:
    """A pseudo-terminal the demo draws its live view on, read until it is 'closed'."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.output = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # EIO: every slave end closed
                    return

    def hang_up(self) -> None:
        self._stop.set()
        self._reader.join(5)
        os.close(self.master)


@pytest.mark.parametrize("how", ["sighup-terminal-closed", "sigterm"])
def test_a_signal_stops_every_child_and_writes_the_summary(no_leftovers: Path, how: str) -> None:
    folder = no_leftovers
    if how == "sighup-terminal-closed":
        # Closing a terminal window: the live view's terminal goes away (writes fail with EIO)
        # and the demo gets SIGHUP.
        term = Terminal()
        proc = subprocess.Popen(
            demo_argv(folder),
            stdin=term.slave,
            stdout=term.slave,
            stderr=term.slave,
            start_new_session=True,
        )
        os.close(term.slave)
        wait_for(lambda: traffic_started(folder), 120, message="the demo's traffic")
        wait_for(lambda: b"sentinel demo" in term.output, 30, message="the live view")
        term.hang_up()
        proc.send_signal(signal.SIGHUP)
        stderr = ""
    else:
        proc = subprocess.Popen(
            demo_argv(folder, "--no-live"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for(lambda: traffic_started(folder), 120, message="the demo's traffic")
        proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in (stderr or ""), stderr
    assert processes_referencing(folder) == []
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["killed_on_stop"] == []


def test_children_die_with_a_sigkilled_demo(no_leftovers: Path) -> None:
    """The one exit the demo cannot handle: the kernel's parent-death signal covers it."""
    folder = no_leftovers
    proc = subprocess.Popen(
        demo_argv(folder, "--no-live"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: traffic_started(folder), 120, message="the demo's traffic")
    finally:
        proc.kill()
        proc.wait(10)
    wait_for(lambda: processes_referencing(folder) == [], 30, message="the children to die")
