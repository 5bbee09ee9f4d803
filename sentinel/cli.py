"""The `sentinel` command: run | check | eval (see CONTRACT.md)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sentinel import __version__, logs, silence_cli
from sentinel.config.loader import ConfigError, default_path, read_config
from sentinel.display import format_value, table
from sentinel.model import Labels
from sentinel.units import format_duration

if TYPE_CHECKING:
    from sentinel.config import Config

# sentinel.config (pydantic, jinja2) is imported only once a file has been read and parsed
# within the loader's limits: `check` refuses a hostile file before paying for the schema.

log = logging.getLogger("sentinel")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=None,
        help="rules.yaml (default: $SENTINEL_CONFIG, then ./rules.yaml)",
    )
    common.add_argument("--log-format", choices=("text", "json"), default="text")
    common.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )

    parser = argparse.ArgumentParser(prog="sentinel", description="Alerting sidecar for Celery.")
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="run the daemon until SIGTERM/SIGINT")
    sub.add_parser("check", parents=[common], help="validate the config; never touches the network")
    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="collect once, evaluate every rule once, print a table; sends nothing",
    )
    ev.add_argument(
        "--listen",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to listen to events before evaluating "
        "(default: two heartbeat intervals, 4s)",
    )
    nt = sub.add_parser(
        "notify-test",
        parents=[common],
        help="send a test alert (firing, then resolved) through one channel",
    )
    nt.add_argument("channel", help="a channel name from the config's `channels:`")
    silence_cli.add_parser(sub, common)
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="real workers on a local filesystem broker, alerts within a minute",
    )
    demo.add_argument("--dir", default=None, help="working folder (default: a new temp folder)")
    demo.add_argument(
        "--duration", default="90s", help="how long to run (default 90s: one full cycle; e.g. 5m)"
    )
    demo.add_argument(
        "--no-live", action="store_true", help="plain log lines instead of the live console view"
    )
    return parser


def _print_errors(path: str, errors: Sequence[str]) -> None:
    print(f"{path}: invalid configuration ({len(errors)} error(s))", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def _load(args: argparse.Namespace) -> Config | None:
    """The config named by -c (or the default), or None after printing every error."""
    path = args.config or default_path()
    try:
        raw = read_config(path)
        from sentinel.config import validate

        return validate(raw)
    except ConfigError as e:
        _print_errors(path, e.errors)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    path = args.config or default_path()
    try:
        raw = read_config(path)
    except ConfigError as e:
        _print_errors(path, e.errors)
        return 1
    from sentinel.config.check import check_raw

    report = check_raw(raw)
    config = report.config
    if config is None:
        _print_errors(path, report.errors)
        return 1
    print(f"{path}: ok ({len(config.rules)} rule(s), {len(config.channels)} channel(s))")
    for rule in config.rules:
        extra = f" for {format_duration(rule.for_)}" if rule.for_ else ""
        print(
            f"rule    {rule.name:<24} {rule.kind:<18} {rule.severity.value:<8} "
            f"{rule.describe()}{extra}"
        )
    for name, channel in config.channels.items():
        print(f"channel {name:<24} {channel.type:<18} {channel.describe()}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _refused(config: Config) -> list[str]:
    """Why `run` must not start with this config: a routed channel that cannot deliver would
    stay silent while alerts fire, so the operator hears it now rather than during an incident."""
    from sentinel.config.check import secret_problems

    return secret_problems(config, routed_only=True)


def cmd_run(args: argparse.Namespace) -> int:
    from sentinel.app import Sentinel
    from sentinel.config.check import lint

    config = _load(args)
    if config is None:
        return 1
    path = args.config or default_path()
    refused = _refused(config)
    if refused:
        for line in refused:
            log.error("config: %s", line)
        log.error(
            "refusing to start: %d routed channel secret(s) empty or placeholders; set them "
            "(or take those channels out of the route) and start again",
            len(refused),
        )
        return 1
    for warning in lint(config, unrouted=False):
        log.warning("config: %s", warning)
    try:
        sentinel = Sentinel(config)
    except (OSError, sqlite3.Error) as e:  # storage.path unwritable, corrupt, on a full disk
        log.error("cannot open storage %s: %s", config.storage.path, e)
        return 1
    stop = threading.Event()
    reload = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            reload.set()
            return
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sentinel.start()
    except OSError as e:  # the API port is taken, typically: one line, not a traceback
        log.error("cannot start: %s (server.listen %s)", e.strerror or e, config.server.listen)
        sentinel.stop()
        return 1
    try:
        while not stop.wait(0.5):
            if reload.is_set():
                reload.clear()
                _reload(sentinel, path)
    finally:
        sentinel.stop()
    return 0


def _reload(sentinel: Any, path: str) -> None:
    """Apply the file's new config, or keep the running one: never stops the daemon."""
    from sentinel.config import load

    log.info("SIGHUP: reloading %s", path)
    try:
        new = load(path)
        refused = _refused(new)
        if refused:
            raise ConfigError(refused)
    except ConfigError as e:
        log.error("reload failed, keeping the running configuration (%d error(s))", len(e.errors))
        for line in e.errors:
            log.error("config: %s", line)
        return
    except Exception as e:  # whatever it was, the pager keeps running on what it had
        log.error("reload failed, keeping the running configuration: %s: %s", type(e).__name__, e)
        log.debug("reload failure", exc_info=True)
        return
    try:
        sentinel.reload(new)
    except Exception as e:
        log.error("reload failed while applying the new configuration: %s: %s", type(e).__name__, e)
        log.debug("reload failure", exc_info=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from sentinel.app import Sentinel

    config = _load(args)
    if config is None:
        return 1
    sentinel = Sentinel(config, persist=False)
    unreachable = _broker_error(sentinel.app)
    if unreachable is not None:
        print(f"sentinel eval: cannot reach the broker {unreachable}", file=sys.stderr)
        return 1
    # eval sends nothing and writes nothing: an "inactive -> firing" WARNING would read as if
    # an alert had fired. The table is the whole answer.
    quiet = _NoTransitions()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    sentinel.events.start()
    try:
        listen = 4.0 if args.listen is None else args.listen
        deadline = time.monotonic() + listen
        sentinel.events.connected.wait(min(listen, 10.0))
        sentinel.collect_once()
        time.sleep(max(0.0, deadline - time.monotonic()))
        _, rows = sentinel.evaluate()
        events_connected = sentinel.events.connected.is_set()  # stop() clears it
    finally:
        sentinel.events.stop()
        for handler in handlers:
            handler.removeFilter(quiet)
    problems = [
        f"{p.source}: {p.error}" for p in sentinel.store.probes.values() if not p.ok and p.error
    ]
    if not events_connected:
        problems.append("events: not connected")
    kinds = {rule.name: rule.kind for rule in config.rules}
    lines = [("RULE", "LABELS", "VALUE", "THRESHOLD", "STATE")]
    for row in rows:
        kind = kinds[row.rule]
        lines.append(
            (
                row.rule,
                _instance(row.labels),
                format_value(kind, row.value),
                format_value(kind, row.threshold),
                row.state,
            )
        )
    print("\n".join(table(lines)))
    if len(lines) == 1:
        print("(no rule produced a verdict)")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 0


class _NoTransitions(logging.Filter):
    """Drops alert-transition records (they carry `to_state`, see app.log_transition)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "to_state")


def _broker_error(app: Any, timeout: float = 10.0) -> str | None:
    """None when the broker accepts a connection, else "URL: reason" on one line (password
    masked)."""
    from kombu.utils.url import maybe_sanitize_url

    conn = app.connection_for_read()
    try:
        # Two attempts half a second apart: a refused port fails at once, a blackholed host
        # within the transport's connect timeout; eval is a one-shot and should say so fast.
        conn.ensure_connection(max_retries=1, interval_start=0.5, timeout=timeout)
    except Exception as e:  # kombu raises the transport's own errors as OperationalError
        reason = " ".join(str(e).split()) or type(e).__name__
        return f"{maybe_sanitize_url(str(app.conf.broker_url))}: {reason}"
    finally:
        conn.release()
    return None


def _instance(labels: Labels) -> str:
    keep = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    return ",".join(f"{k}={v}" for k, v in keep.items()) or "-"


def cmd_notify_test(args: argparse.Namespace) -> int:
    from sentinel.channels import build
    from sentinel.channels.base import NotifyError
    from sentinel.channels.testalert import test_notifications

    config = _load(args)
    if config is None:
        return 1
    channel = config.channels.get(args.channel)
    if channel is None:
        known = ", ".join(sorted(config.channels)) or "none"
        print(f"unknown channel {args.channel!r} (configured: {known})", file=sys.stderr)
        return 1
    notifier = build(args.channel, channel)
    memo: dict[str, str] = {}
    for notification in test_notifications(args.channel, time.time()):
        step = notification.status
        try:
            memo = dict(notifier.send(replace(notification, memo=memo)) or memo)
        except NotifyError as e:
            kind = type(e).__name__.lower()
            print(f"{args.channel}: test {step} notification FAILED ({kind}): {e.detail}")
            return 1
        print(f"{args.channel}: test {step} notification delivered")
        if step == "firing" and not channel.send_resolved:
            print(f"{args.channel}: send_resolved is false, no resolve sent")
            break
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sentinel.demo.main import run_demo

    return run_demo(args)


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "eval": cmd_eval,
    "notify-test": cmd_notify_test,
    "demo": cmd_demo,
    "silence": silence_cli.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `sentinel check | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
