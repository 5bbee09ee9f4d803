"""Record a live run, replay it: the same transitions and pages (issue 16, "Faithfulness").

A real Redis, a real worker running a task that fails every other call, the worker then
SIGKILLed, while sentinel pages a local webhook receiver and keeps a rolling recording. The
replay of that recording with the same config must give the same transitions and pages, in
the same order, each within one evaluation interval of the live one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.app import Sentinel
from sentinel.record import replay
from sentinel.record.commands import diff_pages
from tests.helpers import ROOT, wait_for
from tests.integration.harness import config_for, wait_live_workers
from tests.receivers import Receiver

pytestmark = pytest.mark.integration

INTERVAL = 2.0
# A live transition is stamped when its tick has run (a few ms after the tick was due), a
# replayed one at the simulated tick: "within one interval" gets that much room.
TICK_RUN = 0.25

RULES = """
- name: TaskFailureRate
  kind: failure_rate
  tasks: ["tests.*"]
  window: 5m
  threshold: {threshold}
  min_count: 6
  severity: error
- name: NoLiveWorkers
  kind: no_live_workers
  severity: critical
"""


def extra(receiver: Receiver, recording: Path | None) -> str:
    text = f"""
route:
  channels: [hook]
  group_by: [alertname]
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 1h
channels:
  hook:
    type: webhook
    url: {receiver.url}/hook
"""
    if recording is not None:
        text += f"record:\n  path: {recording}\n  keep: 1h\n"
    return text


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_replay_of_a_live_run_reproduces_it(broker, workers, producer, tmp_path):
    receiver = Receiver()
    received: list[tuple[float, str, tuple[str, ...]]] = []
    original = receiver.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def stamped(handler: Any) -> None:  # the time each page arrived
        original(handler)
        body = receiver.requests[-1].json()
        names = tuple(sorted({a["labels"]["alertname"] for a in body["alerts"]}))
        received.append((time.time(), body["status"], names))

    receiver.server.RequestHandlerClass.do_POST = stamped  # type: ignore[attr-defined]
    recording = tmp_path / "rec"
    rules = RULES.format(threshold="20%")
    text_extra = extra(receiver, recording)
    config = config_for(broker, tmp_path, rules, extra=text_extra)
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"interval": INTERVAL})}
    )
    worker = workers("w1")
    s = Sentinel(config)
    changes: list[tuple[float, str, str, str]] = []
    s.on_transitions.append(
        lambda ts: changes.extend(
            (
                time.time(),
                t.labels["alertname"],
                t.before.value if t.before else "inactive",
                t.alert.state.value if t.alert else "inactive",
            )
            for t in ts
        )
    )
    s.start(serve=False)
    try:
        assert s.events.connected.wait(15)
        wait_live_workers(s, 1)
        for i in range(12):
            producer.send_task("tests.flaky", args=(i,))
        wait_for(lambda: any("TaskFailureRate" in p[2] for p in received), 30, message="page")
        worker.kill()
        wait_for(lambda: any("NoLiveWorkers" in p[2] for p in received), 30, message="page")
    finally:
        s.stop()
        receiver.close()

    header, records = replay.read([recording])
    result = replay.run(config, records, start=header["started_at"])
    assert result.error is None
    assert [(c.alertname, c.before, c.after) for c in result.changes] == [
        (c[1], c[2], c[3]) for c in changes
    ], (result.changes, changes)
    for got, want in zip(result.changes, changes, strict=True):
        assert abs(got.at - want[0]) <= INTERVAL + TICK_RUN, (got, want)
    assert [(p.status, p.alertnames) for p in result.pages] == [(p[1], p[2]) for p in received]
    for page, want in zip(result.pages, received, strict=True):
        assert abs(page.at - want[0]) <= INTERVAL + TICK_RUN, (page, want)
    assert {p.alertnames for p in result.pages} == {("TaskFailureRate",), ("NoLiveWorkers",)}

    # --diff: a threshold the flaky task (50% failures) never reaches drops its page only.
    higher = config_for(broker, tmp_path, RULES.format(threshold="60%"), extra=text_extra)
    higher = higher.model_copy(update={"evaluation": config.evaluation})
    _, records = replay.read([recording])
    other = replay.run(higher, records, start=header["started_at"])
    diff = diff_pages(result.pages, other.pages)
    gone = [p.alertnames for mark, p, _ in diff if mark == "-" and p is not None]
    kept = [p.alertnames for mark, p, _ in diff if mark == "=" and p is not None]
    assert gone == [("TaskFailureRate",)]
    assert kept == [("NoLiveWorkers",)]
    assert not [d for d in diff if d[0] == "+"]

    # The same through the command line, both ways.
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(json.dumps(config.model_dump(mode="json", by_alias=True, exclude={"record"})))
    b.write_text(json.dumps(higher.model_dump(mode="json", by_alias=True, exclude={"record"})))
    out = _sentinel("replay", "-c", str(a), "--diff", str(b), str(recording), code=1)
    assert "- " in out and "TaskFailureRate" in out, out
    assert "1 page(s) only with" in out, out


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_sentinel_record_command_then_replay(broker, workers, tmp_path):
    workers("w1")
    receiver = Receiver()
    try:
        cfg = tmp_path / "rules.yaml"
        config = config_for(
            broker, tmp_path, RULES.format(threshold="20%"), extra=extra(receiver, None)
        )
        cfg.write_text(
            json.dumps(config.model_dump(mode="json", by_alias=True, exclude={"record"}))
        )
        out = tmp_path / "cluster.rec"
        _sentinel("record", "-c", str(cfg), "--out", str(out), "--duration", "4s")
        _, records = replay.read([out])
        kinds = {r.kind for r in records}
        assert {"eb", "in", "qd", "ok"} <= kinds, kinds  # eb: Redis message bodies
        text = _sentinel("replay", "-c", str(cfg), "--json", str(out))
        timeline = json.loads(text)
        assert timeline["records"] > 0 and timeline["error"] is None
        assert receiver.requests == []  # a replay sends nothing
    finally:
        receiver.close()


def _sentinel(*args: str, code: int = 0) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == code, proc.stderr + proc.stdout
    return proc.stdout
