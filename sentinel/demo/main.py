"""`sentinel demo`: start the workers, sentinel and the traffic, run the scenario, stop cleanly.

Start order is data-flow order: workers, then sentinel (so it never sees an empty cluster and
pages about it), then the producer. Every child runs in its own process group and is stopped
in `finally`, whether the run ended by duration, Ctrl-C, SIGTERM, SIGHUP (the terminal
closed), SIGPIPE or a stdout that went away (`| head`), or an exception; and dies with the demo
if the demo itself is SIGKILLed (`guard`). summary.json is written on every one of these but
the last.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.config import ConfigError, load
from sentinel.demo.app import BULK_QUEUE, DEFAULT_QUEUE, ENV_DIR, prepare_dirs
from sentinel.demo.console import Console, LiveConsole, Output, PlainConsole, View
from sentinel.demo.procs import Child, stop_all
from sentinel.demo.receiver import WebhookReceiver
from sentinel.demo.scenario import KILLED_WORKER, Timeline, config_text
from sentinel.demo.story import Story
from sentinel.demo.watch import Api, LogPage, LogTail, Problem, Sent, Snapshot, Transition, instance
from sentinel.display import format_value
from sentinel.units import parse_duration

MARKER = ".sentinel-demo"
# Every way the demo can be told to stop. SIGPIPE is ignored by Python (writes fail with EPIPE
# instead, which Output handles); handled here too for a parent that reset it to the default.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TICK = 1.0


class DemoFailed(Exception):
    pass


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during start-up: a normal way to end, not a failure."""


def run_demo(args: argparse.Namespace) -> int:
    if getattr(args, "config", None):
        # The demo writes and runs its own config (tuned to its own traffic and broker): a
        # user's rules.yaml would silently be ignored, so refuse it instead.
        print(
            "demo: -c/--config is not used: the demo generates its own config "
            "(see rules.yaml in its --dir); run `sentinel run -c FILE` for yours",
            file=sys.stderr,
        )
        return 2
    try:
        duration = parse_duration(args.duration)
    except ValueError as e:
        print(f"--duration: {e}", file=sys.stderr)
        return 2
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sentinel-demo-"))
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        # A run starts by deleting logs/ and broker/ there: never in someone's project folder.
        print(f"--dir {root}: not empty and not made by `sentinel demo`", file=sys.stderr)
        return 2
    out = Output(sys.stdout)
    live = not args.no_live and out.isatty()
    console: Console = LiveConsole(out) if live else PlainConsole(out)
    level = "debug" if args.log_level == "debug" else "info"
    demo = Demo(root.resolve(), duration, console, level)
    out.on_lost = demo.output_lost
    if out.lost:  # already gone while drawing the first frame
        demo.output_lost()
    return demo.run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, root: Path, duration: float, console: Console, log_level: str) -> None:
        self.root = root
        self.duration = duration
        self.console = console
        self.log_level = log_level
        self.files = {
            "config": str(root / "rules.yaml"),
            "logs": str(root / "logs"),
            "webhook": str(root / "webhook.jsonl"),
            "summary": str(root / "summary.json"),
        }
        self.timeline = Timeline()
        self.started = time.time()
        self.story = Story(self.started, {})
        self.stop = threading.Event()
        self.hurry = False  # a second Ctrl-C: no more waiting for warm shutdowns
        self.payloads: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.children: dict[str, Child] = {}
        self.deliberately_down: set[str] = set()
        self.api: Api | None = None
        self.tail = LogTail(root / "logs" / "sentinel.log")
        self.snapshot: Snapshot | None = None
        self.totals: deque[tuple[float, float]] = deque(maxlen=6)
        self.schedule: list[tuple[float, str]] = []
        self.t0: float | None = None

    # -- entry point ----------------------------------------------------------------------

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        receiver: WebhookReceiver | None = None
        code = 0
        try:
            self._prepare()
            receiver = WebhookReceiver(
                Path(self.files["webhook"]), lambda p: self.payloads.put((time.time(), p))
            )
            receiver.start()
            self._start(receiver.url)
            self._scenario()
        except Interrupted:
            self.note("demo", "interrupted during start-up; stopping")
        except DemoFailed as e:
            self.note("problem", str(e))
            code = 1
        except Exception as e:  # still stop every child, then let the traceback show
            self.note("problem", f"{type(e).__name__}: {e}")
            raise
        finally:
            try:
                self._shutdown(receiver)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return code

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():
            self.hurry = True
            return
        self.stop.set()

    def output_lost(self) -> None:
        """Nobody reads the demo any more (`| head` left, the terminal closed): stop, as a
        SIGPIPE would, but through the shutdown that stops the children and writes the
        summary."""
        self.stop.set()

    # -- start-up -------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).touch()
        # A reused folder starts over: stale bindings or alert state from an earlier run
        # would page about processes that no longer exist.
        for name in ("broker", "logs"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("sentinel.db", "sentinel.db-wal", "sentinel.db-shm", "webhook.jsonl"):
            (self.root / name).unlink(missing_ok=True)
        prepare_dirs(self.root)
        (self.root / "logs").mkdir()

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            ENV_DIR: str(self.root),
            "PYTHONUNBUFFERED": "1",
        }

    def _child(self, name: str, argv: list[str]) -> Child:
        child = Child(
            name,
            argv,
            cwd=self.root,
            env=self._env(),
            log_path=self.root / "logs" / f"{name}.log",
        )
        self.children[name] = child
        return child

    def _worker(self, name: str, queue_name: str, threads: int) -> Child:
        return self._child(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sentinel.demo.app",
                "worker",
                "-P",
                "threads",
                "-c",
                str(threads),
                "-E",
                "-n",
                f"{name}@demo",
                "-Q",
                queue_name,
                # Celery's rule: dead after 2 missed heartbeats, so a kill shows within 4 s.
                "--heartbeat-interval",
                "2",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
            ],
        )

    def _start(self, webhook_url: str) -> None:
        api_port = free_port()
        Path(self.files["config"]).write_text(config_text(self.root, api_port, webhook_url))
        try:
            config = load(self.files["config"])
        except ConfigError as e:
            raise DemoFailed("generated config is invalid: " + "; ".join(e.errors)) from None
        self.story.kinds = {rule.name: rule.kind for rule in config.rules}
        self.note("demo", f"folder {self.root} (broker: filesystem:// under broker/)")
        workers = [
            self._worker("w1", DEFAULT_QUEUE, 4),
            self._worker("w2", BULK_QUEUE, 1),
        ]
        self.note(
            "demo",
            f"starting celery workers w1@demo (queue {DEFAULT_QUEUE}, 4 threads) and "
            f"w2@demo (queue {BULK_QUEUE}, 1 thread)",
        )
        for w in workers:
            w.start()
        self._wait(
            lambda: all(b" ready." in _read(w.log_path) for w in workers),
            "the workers to be ready",
        )
        sentinel = self._child(
            "sentinel",
            [
                sys.executable,
                "-m",
                "sentinel",
                "run",
                "-c",
                self.files["config"],
                "--log-format",
                "json",
                "--log-level",
                self.log_level,
            ],
        )
        sentinel.start()
        self.api = Api(api_port)
        self.note(
            "demo",
            f"starting sentinel: API http://127.0.0.1:{api_port}/api/v1/alerts, "
            f"pages to log and to the webhook {webhook_url}",
        )
        self._wait(self.api.healthy, "sentinel's HTTP API")
        hosts = {f"{w.name}@demo" for w in workers}
        self._wait(
            lambda: self.snapshot is not None and all(self.snapshot.workers.get(h) for h in hosts),
            "sentinel to see both workers (events and inspect over filesystem://)",
        )
        self.note("demo", "sentinel sees 2/2 workers; starting traffic")
        self.t0 = time.time()
        remaining = self.duration - (self.t0 - self.started)
        self.schedule = self.timeline.schedule(remaining)
        self._child(
            "producer", [sys.executable, "-m", "sentinel.demo.producer", "--t0", str(self.t0)]
        ).start()

    def _wait(self, ready: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready():
            if self.stop.is_set():
                raise Interrupted
            self._check_children()
            if time.monotonic() > deadline:
                raise DemoFailed(f"gave up after {STARTUP_TIMEOUT:g}s waiting for {what}")
            self._refresh()
            self.stop.wait(0.2)

    # -- the scenario ---------------------------------------------------------------------

    def _scenario(self) -> None:
        deadline = self.started + self.duration
        while not self.stop.is_set() and time.time() < deadline:
            self._due_actions()
            self._check_children()
            self._refresh()
            self.stop.wait(max(0.0, min(TICK, deadline - time.time())))
        if self.stop.is_set():
            self.note("demo", "interrupted; stopping")
        else:
            self.note("demo", "duration reached; stopping")

    def _due_actions(self) -> None:
        assert self.t0 is not None
        while self.schedule and self.t0 + self.schedule[0][0] <= time.time():
            _, action = self.schedule.pop(0)
            worker = self.children[KILLED_WORKER]
            if action == "burst":
                detail = (
                    f"burst: {self.timeline.burst_size} demo.resize_image onto queue {BULK_QUEUE}"
                )
            elif action == "kill":
                self.deliberately_down.add(worker.name)
                worker.kill()
                detail = f"killed {worker.name}@demo (SIGKILL, pid {worker.pid})"
            else:
                worker.start()
                self.deliberately_down.discard(worker.name)
                detail = f"restarted {worker.name}@demo (pid {worker.pid})"
            self.story.action(time.time(), action, detail)
            self.note("scenario", detail)

    def _check_children(self) -> None:
        for child in self.children.values():
            if child.name in self.deliberately_down or child.running():
                continue
            if child.name == "sentinel":
                raise DemoFailed(
                    f"sentinel exited with code {child.exit_code()}:\n{child.log_tail()}"
                )
            self.deliberately_down.add(child.name)  # report once
            self.note(
                "problem",
                f"{child.name} exited with code {child.exit_code()}; see {child.log_path}",
            )

    def _next_action(self) -> str:
        now = time.time()
        if self.t0 is None:
            return "start-up"
        if not self.schedule:
            left = max(0.0, self.started + self.duration - now)
            return f"nothing more scheduled; stopping in {left:.0f}s"
        at, action = self.schedule[0]
        what = {"burst": "burst of image jobs", "kill": f"kill {KILLED_WORKER}"}.get(
            action, f"restart {KILLED_WORKER}"
        )
        return f"{what} in {max(0, self.t0 + at - now):.0f}s"

    # -- watching sentinel ----------------------------------------------------------------

    def _refresh(self) -> None:
        self._drain()
        now = time.time()
        if self.api is not None:
            snap = self.api.snapshot(now)
            if snap is not None:
                self.snapshot = snap
                self.totals.append((now, snap.events_total))
        rate = None
        if len(self.totals) >= 2 and self.totals[-1][0] > self.totals[0][0]:
            (t1, v1), (t2, v2) = self.totals[0], self.totals[-1]
            rate = (v2 - v1) / (t2 - t1)
        self.console.update(
            View(
                started=self.started,
                elapsed=now - self.started,
                duration=self.duration,
                folder=str(self.root),
                snapshot=self.snapshot,
                events_per_s=rate,
                next_action=self._next_action(),
                kinds=self.story.kinds,
            )
        )

    def _drain(self) -> None:
        for item in self.tail.read():
            if isinstance(item, Transition):
                self.story.transition(item)
                kind = self.story.kinds.get(item.labels.get("alertname", ""))
                value = format_value(kind, item.value)
                threshold = format_value(kind, item.threshold)
                self.note(
                    item.after if item.after != "inactive" else "resolved",
                    f"{instance(item.labels)} {item.before} -> {item.after}"
                    f" (value {value}, threshold {threshold})",
                    at=item.at,
                )
            elif isinstance(item, Sent):
                self.story.delivered(item)
            elif isinstance(item, LogPage):
                self.note("page", f"log channel: {item.text}", at=item.at)
            elif isinstance(item, Problem):
                self.note("problem", item.text, at=item.at)
        while True:
            try:
                at, payload = self.payloads.get_nowait()
            except queue.Empty:
                break
            self.story.received(at, payload)
            self.note("page", f"webhook received: {_describe(payload)}", at=at)

    def note(self, kind: str, text: str, at: float | None = None) -> None:
        self.console.note((at or time.time()) - self.started, kind, text)

    # -- shutdown -------------------------------------------------------------------------

    def _shutdown(self, receiver: WebhookReceiver | None) -> None:
        children = list(self.children.values())
        if children:
            self.note("demo", f"stopping {len(children)} process(es)")
            killed = stop_all(children, STOP_TIMEOUT, hurry=lambda: self.hurry)
            self.story.killed_on_stop = killed
            left = [c.name for c in children if c.group_alive()]
            if left:
                self.note("problem", f"still running after SIGKILL: {', '.join(left)}")
        # Sentinel flushed its last sends while stopping; the receiver stays up until now.
        self._drain()
        if receiver is not None:
            receiver.stop()
        self._drain()
        self.console.close()
        duration = time.time() - self.started
        Path(self.files["summary"]).write_text(
            json.dumps(self.story.as_dict(duration, self.files), indent=2) + "\n"
        )
        self.console.lines(["", *self.story.summary_lines(duration, self.files)])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _describe(payload: dict[str, Any]) -> str:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        alerts = []
    group = payload.get("groupLabels") or {}
    name = group.get("alertname") if isinstance(group, dict) else None
    return (
        f"Alertmanager v{payload.get('version')} {payload.get('status')} {name or '?'}"
        f" ({len(alerts)} alert(s))"
    )
