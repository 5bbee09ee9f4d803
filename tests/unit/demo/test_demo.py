"""The demo's pure parts: its generated config, its schedule, reading sentinel's log, the story."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.config import parse
from sentinel.demo.console import LiveConsole, Output, PlainConsole
from sentinel.demo.guard import main as guard_main
from sentinel.demo.main import run_demo
from sentinel.demo.procs import guarded
from sentinel.demo.scenario import Timeline, config_text
from sentinel.demo.story import Story
from sentinel.demo.watch import LogPage, LogTail, Problem, Sent, Transition, parse_line
from tests.helpers import T0

TS = "2023-11-14T22:13:20.000+00:00"  # T0


def test_generated_config_is_valid_and_covers_every_rule_kind(tmp_path: Path) -> None:
    config = parse(config_text(tmp_path, 9999, "http://127.0.0.1:1234/alerts"), env={})
    assert {r.kind for r in config.rules} == {
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
    assert config.celery.broker_url.startswith("filesystem://")
    options = config.celery.broker_transport_options
    assert (
        options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "broker" / "data")
    )
    assert set(config.channels) == {"log", "pager"}
    assert config.route is not None and set(config.route.channels or ()) == {"log", "pager"}
    assert config.server.listen == "127.0.0.1:9999"


def test_schedule_repeats_each_cycle_in_order() -> None:
    timeline = Timeline(cycle=60, burst_at=10, kill_at=20, revive_at=30)
    assert timeline.schedule(75) == [
        (10, "burst"),
        (20, "kill"),
        (30, "revive"),
        (70, "burst"),
    ]


def record(**fields: object) -> str:
    return json.dumps({"ts": TS, "level": "info", "logger": "sentinel", "msg": "m", **fields})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            record(
                level="warning",
                labels={"alertname": "NoLiveWorkers", "severity": "critical"},
                fingerprint="f1",
                from_state="pending",
                to_state="firing",
                value=1,
                threshold=2,
            ),
            Transition(
                T0,
                "f1",
                {"alertname": "NoLiveWorkers", "severity": "critical"},
                "pending",
                "firing",
                1.0,
                2.0,
            ),
        ),
        (
            record(
                logger="sentinel.notify",
                channel="pager",
                outcome="success",
                status="resolved",
                group_labels={"alertname": "IdleWorker"},
            ),
            Sent(T0, "pager", "resolved", {"alertname": "IdleWorker"}),
        ),
        (
            record(logger="sentinel.notify.log", msg="[FIRING:1] SlowTasks"),
            LogPage(T0, "[FIRING:1] SlowTasks"),
        ),
        (
            record(level="error", logger="sentinel.notify", msg="FAILED"),
            Problem(T0, "error", "sentinel.notify: FAILED"),
        ),
        (record(msg="sentinel started"), None),
        ("Traceback (most recent call last):", None),
        ("[1, 2]", None),
        (json.dumps({"msg": "no timestamp"}), None),
    ],
)
def test_parse_line(line: str, expected: object) -> None:
    assert parse_line(line) == expected


def test_log_tail_keeps_a_partial_line_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.log"
    tail = LogTail(path)
    assert tail.read() == []
    page = record(logger="sentinel.notify.log", msg="page")
    path.write_text(page[:10])
    assert tail.read() == []
    with open(path, "a") as f:
        f.write(page[10:] + "\n")
    assert tail.read() == [LogPage(T0, "page")]
    assert tail.read() == []


def transition(before: str, after: str, at: float) -> Transition:
    return Transition(at, "fp", {"alertname": "NoLiveWorkers"}, before, after, 1.0, 2.0)


def test_story_pairs_each_firing_with_its_resolve() -> None:
    story = Story(T0, {"NoLiveWorkers": "no_live_workers"})
    story.action(T0 + 30, "kill", "killed w1@demo")
    story.transition(transition("inactive", "pending", T0 + 34))
    story.transition(transition("pending", "firing", T0 + 40))
    story.transition(transition("firing", "resolved", T0 + 48))
    story.transition(transition("resolved", "firing", T0 + 100))
    story.delivered(Sent(T0 + 42, "pager", "firing", {}))
    story.delivered(Sent(T0 + 50, "pager", "resolved", {}))
    files = {"config": "c", "logs": "l", "webhook": "w", "summary": "s"}

    summary = story.as_dict(120, files)
    lines = story.summary_lines(120, files)

    (alert,) = summary["alerts"]
    assert alert["fired"] == [40, 100]
    assert alert["resolved"] == [48]
    assert alert["firing_at_exit"] is True
    assert summary["sent"] == {"pager": {"firing": 1, "resolved": 1}}
    assert summary["scenario"] == [{"at": 30, "action": "kill", "detail": "killed w1@demo"}]
    assert "  NoLiveWorkers  no_live_workers  00:40  00:48" in lines
    assert "  NoLiveWorkers  no_live_workers  01:40  still firing" in lines
    assert "  rule kinds fired: 1 of 1" in lines


# -- output that goes away, -c, the parent-death guard -----------------------------------------


class GoneStream:
    """A stdout whose reader left: every write and flush fails as a pipe or a hung-up tty does."""

    def __init__(self, error: OSError) -> None:
        self.error = error
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise self.error

    def flush(self) -> None:
        raise self.error

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "error", [BrokenPipeError(32, "Broken pipe"), OSError(5, "Input/output error")]
)
def test_output_that_goes_away_stops_the_demo_once_and_never_raises(error: OSError) -> None:
    lost: list[bool] = []
    stream = GoneStream(error)
    out = Output(stream, lambda: lost.append(True))  # type: ignore[arg-type]
    console = PlainConsole(out)
    console.note(1.0, "demo", "first")
    console.note(2.0, "demo", "second")
    console.lines(["summary"])
    assert lost == [True]
    assert out.lost and stream.writes == 1
    assert not out.isatty()  # a live view over a dead terminal is not redrawn
    live = LiveConsole(out)
    live.close()


def test_a_closed_pipe_is_pointed_at_dev_null(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        out = Output(stream)
        out.write("x" * 100_000)  # more than the buffer: the write reaches the dead pipe
        out.flush()
        assert out.lost
        # What is still buffered can now be flushed at exit without a second traceback.
        assert os.fstat(write_end).st_ino == os.stat(os.devnull).st_ino
        stream.write("late")


def test_demo_refuses_a_config_it_would_ignore(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "demo"
    args = argparse.Namespace(
        config="rules.yaml", dir=str(folder), duration="90s", no_live=True, log_level="info"
    )
    assert run_demo(args) == 2
    assert "-c/--config is not used" in capsys.readouterr().err
    assert not folder.exists()


def run_guarded(parent: int, code: str) -> subprocess.CompletedProcess[str]:
    argv = guarded([sys.executable, "-c", code])
    argv[3] = str(parent)  # as if started by that process
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


PDEATHSIG = (
    "import ctypes; s = ctypes.c_int(); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0); print(s.value)"  # PR_GET_PDEATHSIG
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_guard_arms_the_parent_death_signal_and_execs() -> None:
    proc = run_guarded(os.getpid(), PDEATHSIG)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(int(signal.SIGKILL))


def test_guard_does_not_start_a_child_whose_parent_is_already_gone() -> None:
    proc = run_guarded(1, "print('started')")  # our parent is not pid 1: "the demo is gone"
    assert proc.returncode == 1
    assert "started" not in proc.stdout


def test_guarded_keeps_the_command_and_names_the_parent() -> None:
    argv = guarded(["celery", "worker"])
    assert argv[1:3] == ["-m", "sentinel.demo.guard"]
    assert argv[3] == str(os.getpid())
    assert argv[4:] == ["--", "celery", "worker"]
    assert guard_main(["x", "--", "true"]) == 2
