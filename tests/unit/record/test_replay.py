"""The replay engine and `sentinel replay`: timeline, pages, cuts, diff, bad recordings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.config import validate
from sentinel.record import format as fmt
from sentinel.record import replay
from sentinel.record.commands import diff_pages, parse_time

T0 = 1_767_225_600.0

RAW = {
    "evaluation": {"interval": "15s"},
    "rules": [
        {
            "name": "TaskFailureRate",
            "kind": "failure_rate",
            "tasks": ["*"],
            "window": "5m",
            "threshold": "5%",
            "min_count": 5,
            "severity": "error",
        },
        {"name": "NoLiveWorkers", "kind": "no_live_workers", "for": "10s", "severity": "critical"},
    ],
    "route": {
        "channels": ["hook"],
        "group_by": ["alertname"],
        "group_wait": "5s",
        "group_interval": "1m",
        "repeat_interval": "4h",
    },
    "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/never"}},
}


def beat(t: float) -> fmt.Record:
    event = {"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 0}
    return fmt.Record(fmt.EVENTS, T0 + t, ([{**event, "processed": int(t), "timestamp": T0 + t}],))


def failures(t: float, n: int) -> list[fmt.Record]:
    out = []
    for i in range(n):
        u = f"u{t}-{i}"
        base = {"uuid": u, "hostname": "w1", "timestamp": T0 + t}
        out.append(
            fmt.Record(
                fmt.EVENTS,
                T0 + t + i,
                (
                    [
                        {**base, "type": "task-received", "name": "e2e.fail"},
                        {**base, "type": "task-started"},
                        {**base, "type": "task-failed", "exception": "boom"},
                    ],
                ),
            )
        )
    return out


def story() -> list[fmt.Record]:
    """A worker alive 0-300 s that fails 10 tasks at 60-70 s; then silence (probes go on)."""
    records = [beat(t) for t in range(0, 300, 2)] + failures(60, 10)
    records += [fmt.Record(fmt.PROBE_OK, T0 + t, ("events",)) for t in range(0, 700, 5)]
    return sorted(records, key=lambda r: r.t)


def write(path: Path, records: list[fmt.Record], per_frame: int = 50) -> None:
    w = fmt.Writer(path, {"started_at": T0})
    for i in range(0, len(records), per_frame):
        w.write([fmt.encode(r.kind, r.t, *r.args) for r in records[i : i + per_frame]])
    w.close()


def test_timeline_of_transitions_and_pages():
    result = replay.run(validate(RAW), story(), start=T0)
    changes = [(c.at - T0, c.alertname, c.before, c.after) for c in result.changes]
    # Failures from 60 s: the first evaluation with 5 finished is at 75 s. The worker's last
    # heartbeat is at 298 s: dead at 302 s (liveness is checked every second), firing at
    # 312 s. Below min_count once the failures leave the window there is no verdict, so
    # TaskFailureRate is held, not resolved.
    assert changes[:2] == [
        (75.0, "TaskFailureRate", "inactive", "firing"),
        (302.0, "NoLiveWorkers", "inactive", "pending"),
    ]
    assert (312.0, "NoLiveWorkers", "pending", "firing") in changes
    assert len(changes) == 3
    pages = [(p.at - T0, p.channel, p.status, p.alertnames) for p in result.pages]
    assert pages == [
        (80.0, "hook", "firing", ("TaskFailureRate",)),  # group_wait 5s
        (317.0, "hook", "firing", ("NoLiveWorkers",)),
    ]
    first = result.pages[0]
    assert first.alerts[0].labels["task"] == "e2e.fail" and first.alerts[0].value == 1.0


def test_replay_is_deterministic():
    a = replay.run(validate(RAW), story(), start=T0)
    b = replay.run(validate(RAW), story(), start=T0)
    assert a.changes == b.changes and a.pages == b.pages


def test_from_warms_up_facts_and_to_stops():
    result = replay.run(validate(RAW), story(), start=T0, evaluate_from=T0 + 200, until=T0 + 320)
    # The failures before --from are facts (still in the window), not silently lost; the
    # first second evaluates at once, as the daemon does when it first sees a live worker...
    assert result.changes[0].at == T0 + 201 and result.changes[0].alertname == "TaskFailureRate"
    # ...and nothing is evaluated after --to.
    assert all(c.at <= T0 + 320 for c in result.changes)
    assert result.end == T0 + 320


def test_a_corrupt_recording_replays_what_came_before(tmp_path, capsys):
    path = tmp_path / "r.rec"
    write(path, story())
    data = bytearray(path.read_bytes())
    cut = len(data) * 3 // 4
    path.write_bytes(bytes(data[:cut]))
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(json.dumps(RAW))
    assert main(["replay", "-c", str(cfg), str(path)]) == 1
    captured = capsys.readouterr()
    assert "bad record at byte" in captured.err and "truncated frame" in captured.err
    assert "replayed what came before" in captured.err
    assert "TaskFailureRate" in captured.out and "PAGE hook FIRING" in captured.out


def test_replay_command_text_and_json(tmp_path, capsys):
    path = tmp_path / "r.rec"
    write(path, story())
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(json.dumps(RAW))
    assert main(["replay", "-c", str(cfg), str(path)]) == 0
    out = capsys.readouterr().out
    assert '2026-01-01T00:01:15Z    +1m15s  TaskFailureRate{task="e2e.fail"}' in out
    assert "inactive -> firing  value 100.0% vs threshold 5.0%" in out
    assert '+1m20s  PAGE hook FIRING {alertname="TaskFailureRate"}' in out
    assert main(["replay", "-c", str(cfg), "--json", "--to", "+2m", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["status"] for p in doc["pages"]] == ["firing"]
    assert doc["transitions"][0]["to"] == "firing"
    assert doc["error"] is None


def test_diff_pages_appear_disappear_move(tmp_path, capsys):
    path = tmp_path / "r.rec"
    write(path, story())
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(json.dumps(RAW))
    other = json.loads(json.dumps(RAW))
    other["rules"][0]["min_count"] = 50  # no verdict on 10 tasks: the failure page disappears
    other["rules"][1]["for"] = "40s"  # the worker page moves 30 s later
    b.write_text(json.dumps(other))
    # Pages differ: exit 1, as diff(1) and a failing test do.
    assert main(["replay", "-c", str(a), "--diff", str(b), str(path)]) == 1
    out = capsys.readouterr().out
    assert "- 2026-01-01T00:01:20Z" in out and "TaskFailureRate" in out
    assert "~ " in out and "moved to 2026-01-01T00:05:47Z (+30s)" in out
    assert "only with" in out
    assert main(["replay", "-c", str(a), "--diff", str(b), "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {d["change"] for d in doc["pages"]} >= {"disappeared", "moved"}


def test_diff_of_the_same_pages_exits_0(tmp_path, capsys):
    path = tmp_path / "r.rec"
    write(path, story())
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(json.dumps(RAW))
    other = json.loads(json.dumps(RAW))
    other["rules"][0]["threshold"] = "6%"  # 100% failures page either way
    b.write_text(json.dumps(other))
    assert main(["replay", "-c", str(a), "--diff", str(b), str(path)]) == 0
    assert "0 page(s) only with" in capsys.readouterr().out


def silence_raw(tmp_path: Path) -> dict:
    return {**RAW, "storage": {"path": str(tmp_path / "state.db")}}


def test_replay_mutes_with_the_state_files_silences_and_never_writes_it(tmp_path, capsys):
    from sentinel.db.sqlite import Database
    from sentinel.notify.silence import Matcher, Silence
    from sentinel.notify.silence.repo import SqlSilenceRepo

    db = Database(tmp_path / "state.db")
    matcher = Matcher.from_api({"name": "alertname", "value": "TaskFailureRate", "isRegex": False})
    SqlSilenceRepo(db).save(
        Silence(
            id="s1",
            matchers=(matcher,),
            starts_at=T0,
            ends_at=T0 + 3600,
            created_by="ops",
            comment="known flaky",
            updated_at=T0,
        )
    )
    db.close()
    before = (tmp_path / "state.db").read_bytes()
    path = tmp_path / "r.rec"
    write(path, story())
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(json.dumps(silence_raw(tmp_path)))
    assert main(["replay", "-c", str(cfg), str(path)]) == 0
    out = capsys.readouterr().out
    assert f"1 silence(s) from {tmp_path / 'state.db'}" in out
    # The alert still fires (the timeline shows it); its page is muted as it was live.
    assert "TaskFailureRate" in out and 'PAGE hook FIRING {alertname="TaskFailureRate"}' not in out
    assert 'PAGE hook FIRING {alertname="NoLiveWorkers"}' in out
    assert (tmp_path / "state.db").read_bytes() == before
    assert main(["replay", "-c", str(cfg), "--no-silences", str(path)]) == 0
    out = capsys.readouterr().out
    assert "silences ignored (--no-silences)" in out
    assert 'PAGE hook FIRING {alertname="TaskFailureRate"}' in out


def test_replay_without_a_state_file_says_so(tmp_path, capsys):
    path = tmp_path / "r.rec"
    write(path, story())
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(json.dumps(silence_raw(tmp_path)))
    assert main(["replay", "-c", str(cfg), str(path)]) == 0
    assert "no silences (" in capsys.readouterr().out
    assert not (tmp_path / "state.db").exists()


def test_an_unreadable_state_file_stops_the_replay_with_a_way_out(tmp_path, capsys):
    (tmp_path / "state.db").write_bytes(b"not a database at all" * 100)
    path = tmp_path / "r.rec"
    write(path, story())
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(json.dumps(silence_raw(tmp_path)))
    assert main(["replay", "-c", str(cfg), str(path)]) == 1
    assert "--no-silences" in capsys.readouterr().err


def test_diff_pairs_same_pages_in_order():
    one = replay.run(validate(RAW), story(), start=T0)
    assert all(mark == "=" for mark, _, _ in diff_pages(one.pages, one.pages))


def test_nothing_is_sent_and_the_real_state_is_untouched(tmp_path, monkeypatch):
    raw = {
        **RAW,
        "storage": {"path": str(tmp_path / "real.db")},
        "record": {"path": str(tmp_path / "recording")},
    }
    called = []
    monkeypatch.setattr("requests.Session.request", lambda *a, **k: called.append(a))
    replay.run(validate(raw), story(), start=T0)
    assert called == []
    assert not (tmp_path / "real.db").exists()
    assert not (tmp_path / "recording").exists()  # a replay does not record itself


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("+10m", T0 + 600),
        ("2026-01-01T00:05:00Z", T0 + 300),
        ("2026-01-01T00:05:00", T0 + 300),
        (str(T0 + 7), T0 + 7),
    ],
)
def test_parse_time(text, want):
    assert parse_time(text, T0) == want
