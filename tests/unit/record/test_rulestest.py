"""`sentinel test`: the shorthand parser, the report and the exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.record import format as fmt
from sentinel.record.rulestest import START, Inputs, RuleTestError, parse_input, parse_line

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"


def events(inputs: Inputs) -> list[tuple[float, str]]:
    return [
        (r.t - START, e["type"]) for r in inputs.records if r.kind == fmt.EVENTS for e in r.args[0]
    ]


def test_n_tasks_failed_over_a_duration():
    inputs = Inputs(end=600)
    parse_line("40 x e2e.fail failed over 2m", inputs, "here")
    got = events(inputs)
    assert len(got) == 120
    failed = [t for t, kind in got if kind == "task-failed"]
    assert len(failed) == 40
    assert failed[0] == pytest.approx(0.1)  # runtime 0.1 s by default
    assert failed[-1] == pytest.approx(39 * 3.0 + 0.1)  # 40 spread over 120 s
    names = {e.get("name") for r in inputs.records for e in r.args[0] if "name" in e}
    assert names == {"e2e.fail"}
    uuids = {e["uuid"] for r in inputs.records for e in r.args[0]}
    assert len(uuids) == 40


@pytest.mark.parametrize(
    "line",
    ["at 1m: 3 x t.ok succeeded on w9 runtime 2s", "3 x t.ok succeeded on w9 runtime 2s at 1m"],
)
def test_at_prefix_or_suffix_worker_and_runtime(line):
    inputs = Inputs(end=600)
    parse_line(line, inputs, "here")
    got = events(inputs)
    assert got[0] == (60.0, "task-received")
    assert (62.0, "task-succeeded") in got
    hosts = {e["hostname"] for r in inputs.records for e in r.args[0]}
    assert hosts == {"w9"}
    done = [e for r in inputs.records for e in r.args[0] if e["type"] == "task-succeeded"]
    assert done[0]["runtime"] == 2.0


def test_statuses_make_the_events_a_task_would():
    for status, last in [
        ("sent", "task-sent"),
        ("received", "task-received"),
        ("started", "task-started"),
        ("retried", "task-retried"),
        ("revoked", "task-revoked"),
    ]:
        inputs = Inputs(end=60)
        parse_line(f"1 x t.x {status}", inputs, "here")
        assert events(inputs)[-1][1] == last


def test_worker_up_heartbeats_every_two_seconds_from_to():
    inputs = Inputs(end=600)
    parse_line("worker w1 up from 10s to 20s", inputs, "here")
    got = events(inputs)
    assert got[0] == (10.0, "worker-online")
    beats = [t for t, kind in got if kind == "worker-heartbeat"]
    assert beats == [10.0, 12.0, 14.0, 16.0, 18.0, 20.0]


def test_worker_up_runs_to_the_end_of_the_test_and_offline():
    inputs = Inputs(end=30)
    parse_line("worker w1 up", inputs, "here")
    parse_line("at 40s: worker w1 offline", inputs, "here")
    got = events(inputs)
    assert [t for t, k in got if k == "worker-heartbeat"][-1] == 30.0
    assert got[-1] == (40.0, "worker-offline")


def test_queue_depth_and_inspect_ping():
    inputs = Inputs(end=60)
    parse_line("at 30s: queue celery depth 5000 consumers 2", inputs, "here")
    parse_line("at 40s: inspect ping w1 w2", inputs, "here")
    q, i = inputs.records
    assert (q.kind, q.t - START, q.args) == (fmt.QUEUES, 30.0, ({"celery": [5000, 2]}, {}))
    assert (i.kind, i.t - START, i.args[0]) == (fmt.INSPECT, 40.0, ["w1", "w2"])


def test_yaml_reads_at_lines_as_mappings_and_raw_events():
    inputs = Inputs(end=60)
    parse_input({"at 1m": "2 x t.x failed"}, inputs, "here")
    parse_input(
        {"at": "50s", "event": {"type": "task-sent", "uuid": "u", "name": "t"}}, inputs, "h"
    )
    raw = inputs.records[-1]
    assert raw.t - START == 50.0
    assert raw.args[0][0]["timestamp"] == START + 50.0
    assert len(events(inputs)) == 7


@pytest.mark.parametrize(
    "line",
    ["40 x e2e.fail exploded", "worker", "queue celery depth lots", "at soon: 1 x t failed"],
)
def test_unreadable_lines_say_where(line):
    with pytest.raises(RuleTestError, match=r"^tests\[0\]\.input\[3\]: "):
        parse_line(line, Inputs(end=60), "tests[0].input[3]")


def test_the_shipped_examples_pass(capsys):
    files = sorted(str(p) for p in (ROOT / "examples" / "tests").glob("*.yaml"))
    assert files
    assert main(["test", *files]) == 0
    out = capsys.readouterr().out
    assert "SUCCESS" in out and "FAILED" not in out


def test_a_failing_file_exits_1_with_a_readable_report(capsys):
    assert main(["test", str(DATA / "failing.test.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"Unit Testing: {DATA / 'failing.test.yaml'}" in out
    assert "  FAILED:" in out
    assert 'test "expects the wrong things":' in out
    assert 'test "passes"' not in out
    # Heartbeats stop at 60 s: dead at 64 s, firing at 94 s (for: 30s), paged at 124 s.
    assert "alert NoLiveWorkers at +1m10s: expected firing, got pending" in out
    assert "page log firing NoLiveWorkers at +1m ±5s: not sent; log got: firing +2m4s" in out
    assert "unexpected page log firing NoLiveWorkers at +2m4s" in out
    assert "FAILED: 1 of 2 test(s) passed" in out


def test_a_broken_test_file_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("config: {}\ntests:\n  - input: ['nonsense here']\n")
    assert main(["test", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "error: tests[0].input[0]: cannot read input 'nonsense here'" in out
