"""Hostile config files against the real commands: `sentinel check` refuses them at once, a
SIGHUP with one leaves the daemon running on what it had, `run` refuses a routed channel whose
secret is a placeholder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import BACKLOG, CONFIG, ENV, NO_WORKERS, Daemon
from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.e2e

BILLION_LAUGHS = """\
rules: []
bogus:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
DIGITS = "1" * 401


def sentinel(command: str, path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m sentinel <command> -c path`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "sentinel", command, "-c", str(path)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def check(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m sentinel check -c path` and its wall time, the best of five: the machine is
    shared, and the bound is about sentinel, not about a neighbour's burst."""
    best, result = float("inf"), None
    for _ in range(5):
        start = time.monotonic()
        result = sentinel("check", path)
        best = min(best, time.monotonic() - start)
    assert result is not None
    return result, best


@pytest.mark.parametrize(
    ("text", "line", "bound"),
    [
        (BILLION_LAUGHS, "bogus.f: expands to more than 100,000 YAML nodes", 1.0),
        (f"evaluation:\n  interval: {DIGITS}\n", "evaluation.interval: number too long", 1.0),
        # Quoted, it is a string that only the schema can judge: no time bound asserted (the
        # schema's import alone is ~0.4 s on an idle core), the point is one line, no trace.
        (
            f"evaluation:\n  interval: '{DIGITS}s'\n",
            "evaluation.interval: expected a finite",
            None,
        ),
    ],
    ids=["billion-laughs", "401-digits", "401-digits-quoted"],
)
def test_check_refuses_a_hostile_file_in_under_a_second(
    tmp_path: Path, text: str, line: str, bound: float | None
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result, elapsed = check(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert line in result.stderr, result.stderr
    if bound is not None:
        assert elapsed < bound, f"check took {elapsed:.2f}s"


def test_check_warns_about_an_empty_file_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing yet\n")
    result, _ = check(path)
    assert result.returncode == 0, result.stderr
    assert "warning: (top level): the configuration is empty" in result.stderr


def test_run_refuses_a_routed_channel_with_a_placeholder_secret(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: A, kind: no_live_workers}\n"
        "route: {channels: [slack]}\n"
        "channels:\n  slack: {type: slack, channel: '#c', token: xoxb-not-configured}\n"
        f"storage: {{path: '{tmp_path / 'db'}'}}\n"
    )
    result = sentinel("run", path)
    assert result.returncode == 1
    assert "channels.slack.token: looks like a placeholder" in result.stderr, result.stderr
    assert "refusing to start" in result.stderr
    assert not (tmp_path / "db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (
            "basic_auth_file: '{missing}'",
            "cannot start: server.basic_auth_file {missing}: No such file or directory",
        ),
        (
            "tls_cert_file: '{garbage}', tls_key_file: '{garbage}'",
            "cannot start: server.tls_cert_file/tls_key_file {garbage}, {garbage}: [SSL]",
        ),
    ],
    ids=["htpasswd", "certificate"],
)
def test_run_names_the_server_file_it_cannot_use(tmp_path: Path, server: str, said: str) -> None:
    """A missing htpasswd file or a broken certificate: one line naming the key, not a
    traceback, and not blamed on server.listen."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    names = {"missing": tmp_path / "nowhere" / "htpasswd", "garbage": garbage}
    server = f"{{listen: '127.0.0.1:0', {server.format(**names)}}}"
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: A, kind: no_live_workers}\n"
        f"server: {server}\n"
        f"storage: {{path: '{tmp_path / 'db'}'}}\n"
        "celery: {broker_url: 'redis://127.0.0.1:1/0'}\n"
    )
    result = sentinel("run", path)
    assert result.returncode == 1, result.stderr
    assert said.format(**names) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "server.listen" not in result.stderr


@pytest.fixture
def daemon(tmp_path: Path, redis_url: str) -> Iterator[Daemon]:
    d = Daemon(tmp_path, NO_WORKERS, redis_url)
    yield d
    d.stop()


def _rules(d: Daemon) -> set[str]:
    return {r["name"] for r in d.get("/api/v1/rules")}  # type: ignore[union-attr]


def test_sighup_with_hostile_files_keeps_the_daemon_on_its_old_config(
    daemon: Daemon, tmp_path: Path
) -> None:
    wait_for(lambda: daemon.firing("NoLiveWorkers"), 30, message="NoLiveWorkers firing")
    fired = daemon.firing("NoLiveWorkers")[0]
    valid = CONFIG.format(broker=daemon.broker, db=daemon.db, rules=NO_WORKERS + BACKLOG)
    fifo = tmp_path / "fifo"

    os.mkfifo(fifo)
    hostile = {
        "billion laughs": BILLION_LAUGHS,
        "401-digit duration": valid.replace(
            "interval: 1s\nstorage", f"interval: {DIGITS}\nstorage"
        ),
        "duplicate key": valid + "evaluation: {interval: 2s}\n",
        "token_file /dev/zero": valid.replace("token: s3cret", "token_file: /dev/zero"),
        "token_file fifo": valid.replace("token: s3cret", f"token_file: {fifo}"),
        "routed placeholder": valid.replace("channels: [log]", "channels: [log, slack]").replace(
            "log: {type: log}", "log: {type: log}\n  slack: {type: slack, channel: c, token: ''}"
        ),
    }
    for n, (what, text) in enumerate(hostile.items(), start=1):
        daemon.config.write_text(text)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda n=n: daemon.log().count("reload failed") >= n,  # type: ignore[misc]
            15,
            message=f"the {what} reload refused",
        )
        assert daemon.proc.poll() is None, f"the daemon exited on a {what} reload"
        assert _rules(daemon) == {"NoLiveWorkers"}, what
        assert daemon.firing("NoLiveWorkers")[0]["startsAt"] == fired["startsAt"], what
    log = daemon.log()
    assert "Traceback" not in log
    for line in (
        "config: bogus.f: expands to more than",
        "config: evaluation.interval: number too long",
        "config: evaluation: duplicate key",
        "not a regular file (a character device)",
        "not a regular file (a FIFO)",
        "config: channels.slack.token: is empty",
    ):
        assert line in log, line

    # The loop that reloads is still healthy: a good file is taken at once.
    daemon.write(NO_WORKERS + BACKLOG)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded: 2 rule(s)" in daemon.log(), 15, message="reload")
    assert _rules(daemon) == {"NoLiveWorkers", "QueueBacklog"}
