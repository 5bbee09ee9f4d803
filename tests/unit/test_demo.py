"""The demo's pure parts: its generated config, its schedule, reading sentinel's log, the story."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.config import parse
from sentinel.demo.scenario import Timeline, config_text
from sentinel.demo.story import Story
from sentinel.demo.watch import LogPage, LogTail, Problem, Sent, Transition, parse_line

T0 = 1_700_000_000.0
TS = "2023-11-14T22:13:20.000+00:00"  # T0


def test_generated_config_is_valid_and_covers_every_rule_kind(tmp_path: Path) -> None:
    config = parse(config_text(tmp_path, 9999, "http://127.0.0.1:1234/alerts"), env={})
    assert {r.kind for r in config.rules} == {
        "no_live_workers",
        "queue_backlog",
        "failure_rate",
        "idle_worker",
        "task_latency",
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
