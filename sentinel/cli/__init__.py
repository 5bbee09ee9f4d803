"""The `sentinel` command: run | check | eval | route | silence | ... (see CONTRACT.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sentinel import __version__, logs
from sentinel.cli import check, demo, notify_test, route, run, silence
from sentinel.cli import eval as eval_
from sentinel.record import commands as record_cli

# One module per command. sentinel.config (pydantic, jinja2) is imported only once a file has
# been read and parsed within the loader's limits: `check` refuses a hostile file before
# paying for the schema.


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
    silence.add_parser(sub, common)
    route.add_parser(sub, common)  # route test, route show
    record_cli.add_parsers(sub, common)  # record, replay, test
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


COMMANDS = {
    "run": run.cmd_run,
    "check": check.cmd_check,
    "eval": eval_.cmd_eval,
    "notify-test": notify_test.cmd_notify_test,
    "demo": demo.cmd_demo,
    "silence": silence.run,
    "route": route.run,
    **record_cli.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `sentinel check | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
