"""`sentinel route test|show`: where an alert goes, and the whole tree, read from the config
alone (like `amtool config routes test|show`). Never contacts the daemon or a channel."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sentinel.cli.common import load_config
from sentinel.units import format_duration

if TYPE_CHECKING:  # the route module imports the config schema (pydantic): at first use only
    from sentinel.notify.route import RouteNode


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    route = sub.add_parser("route", help="which route nodes take an alert; print the route tree")
    actions = route.add_subparsers(dest="action", required=True)
    test = actions.add_parser(
        "test", parents=[common], help="the route nodes that take an alert with these labels"
    )
    test.add_argument("--json", action="store_true", help="one JSON list of the nodes")
    test.add_argument(
        "labels", nargs="*", metavar="LABEL=VALUE", help='alertname=QueueBacklog queue="billing"'
    )
    actions.add_parser("show", parents=[common], help="print the route tree")


def run(args: argparse.Namespace) -> int:
    from sentinel.model import Labels
    from sentinel.notify.matchers import MatcherError, parse_matcher
    from sentinel.notify.route import build_from

    labels: dict[str, str] = {}
    for text in getattr(args, "labels", ()):
        try:
            m = parse_matcher(text)
        except MatcherError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if m.op != "=":
            print(f"error: {text!r}: a label is LABEL=VALUE, not a matcher", file=sys.stderr)
            return 2
        labels[m.name] = m.value
    config = load_config(args)
    if config is None:
        return 1
    root = build_from(config)
    if root is None:
        print("error: the config has no route:", file=sys.stderr)
        return 1
    if args.action == "show":
        print("Routing tree:")
        for line in _tree(root, "", last=True, top=True):
            print(line)
        return 0
    nodes: list[RouteNode] = root.match(Labels(labels))
    if args.json:
        print(json.dumps([node_to_json(n) for n in nodes], indent=2))
    else:
        # amtool prints the receivers, comma-separated; the nodes' details follow.
        print(",".join(_receiver(n) for n in nodes))
        for n in nodes:
            print(f"  {n.key}  {_settings(n)}")
    return 0


def node_to_json(node: RouteNode) -> dict[str, Any]:
    return {
        "key": node.key,
        "receiver": node.receiver,
        "channels": list(node.channels),
        "group_by": None if node.group_by is None else list(node.group_by),
        "group_wait": node.group_wait,
        "group_interval": node.group_interval,
        "repeat_interval": node.repeat_interval,
        "continue": node.continue_,
        "mute_time_intervals": [name for name, _ in node.mute_time_intervals],
        "active_time_intervals": [name for name, _ in node.active_time_intervals],
    }


def _receiver(node: RouteNode) -> str:
    return node.receiver if node.receiver is not None else "+".join(node.channels) or "-"


def _settings(node: RouteNode) -> str:
    group_by = "..." if node.group_by is None else ",".join(node.group_by)
    parts = [
        f"channels={','.join(node.channels) or '-'}",
        f"group_by=[{group_by}]",
        f"group_wait={format_duration(node.group_wait)}",
        f"group_interval={format_duration(node.group_interval)}",
        f"repeat_interval={format_duration(node.repeat_interval)}",
    ]
    if node.continue_:
        parts.append("continue")
    if node.mute_time_intervals:
        parts.append("mute=" + ",".join(n for n, _ in node.mute_time_intervals))
    if node.active_time_intervals:
        parts.append("active=" + ",".join(n for n, _ in node.active_time_intervals))
    return " ".join(parts)


def _tree(node: RouteNode, prefix: str, last: bool, top: bool = False) -> Iterator[str]:
    # amtool's shape: the root as "default-route", each child as its matchers.
    from sentinel.notify.matchers import format_matchers

    label = "default-route" if top else format_matchers(node.matchers)
    branch = "" if top else ("└── " if last else "├── ")
    yield f"{prefix}{branch}{label}  receiver: {_receiver(node)}  {_settings(node)}"
    inner = prefix + ("" if top else ("    " if last else "│   "))
    for i, child in enumerate(node.children):
        yield from _tree(child, inner, last=i == len(node.children) - 1)
