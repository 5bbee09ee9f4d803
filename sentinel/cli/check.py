"""`sentinel check`: validate a configuration and list its rules, without starting anything."""

from __future__ import annotations

import argparse
import sys

from sentinel.cli.common import print_errors
from sentinel.config.loader import ConfigError, default_path, read_config
from sentinel.units import format_duration


def cmd_check(args: argparse.Namespace) -> int:
    path = args.config or default_path()
    try:
        raw = read_config(path)
    except ConfigError as e:
        print_errors(path, e.errors)
        return 1
    from sentinel.config.check import check_raw

    report = check_raw(raw)
    config = report.config
    if config is None:
        print_errors(path, report.errors)
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
