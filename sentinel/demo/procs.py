"""Child processes, each the leader of its own process group, so that stopping one stops
everything it started too, and a Ctrl-C at the terminal reaches only the demo, which then
stops the children in its own order. Each is started through `sentinel.demo.guard`, so that
it dies with the demo even when the demo is SIGKILLed and never gets to stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path


class Child:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The parent-death signal fires when the thread that forked the child ends, not the
        # process: the demo starts every child from its main thread.
        # Appending keeps the log of a killed worker next to the one of its successor.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                guarded(self.argv),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def signal_group(self, signum: int) -> None:
        if self.proc is None:
            return
        # The group outlives its leader when the leader forked (prefork pools): signal it
        # even when the leader is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def group_alive(self) -> bool:
        if self.proc is None:
            return False
        self.proc.poll()  # reap the leader, or a zombie leader keeps the group "alive"
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def kill(self) -> None:
        """SIGKILL, as the OOM killer would: no warm shutdown, no worker-offline event."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def guarded(argv: Sequence[str]) -> list[str]:
    """`argv` behind the parent-death guard; the guard execs it, so the pid stays the same."""
    return [sys.executable, "-m", "sentinel.demo.guard", str(os.getpid()), "--", *argv]


def stop_all(
    children: Iterable[Child], timeout: float = 10.0, hurry: Callable[[], bool] = lambda: False
) -> list[str]:
    """SIGTERM every group at once, SIGKILL what is left after `timeout` (or as soon as
    `hurry()` says so: a second Ctrl-C); returns the names that needed SIGKILL."""
    children = [c for c in children if c.proc is not None]
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not hurry() and any(c.group_alive() for c in children):
        time.sleep(0.1)
    killed = []
    for child in children:
        if child.group_alive():
            killed.append(child.name)
            child.signal_group(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(c.group_alive() for c in children):
        time.sleep(0.05)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            if child.proc is not None:
                child.proc.wait(1)
    return killed
