"""`sentinel notify-test`: send a test alert (firing, then resolved) through one channel."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from sentinel.cli.common import load_config


def cmd_notify_test(args: argparse.Namespace) -> int:
    from sentinel.channels import build
    from sentinel.channels.base import NotifyError
    from sentinel.channels.testalert import test_notifications

    config = load_config(args)
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
