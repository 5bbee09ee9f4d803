"""`config.original` of /api/v2/status: the routing tree, receivers and inhibit rules written
as an alertmanager.yml, which is what amtool (`config show`) and Grafana's Alertmanager data
source read there. Channels are not in it: they are sentinel's, and they hold secrets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from sentinel.api.ports import StatusFacts
from sentinel.api.v2.bodies import node_receivers
from sentinel.notify.matchers import Matcher
from sentinel.notify.route import RouteNode
from sentinel.units import format_duration


def alertmanager_config(route: RouteNode | None, facts: StatusFacts) -> str:
    receivers = [{"name": name} for name in facts.receivers]
    config: dict[str, Any] = {"global": {}}
    if route is not None:
        config["route"] = _route(route, root=True)
    config["receivers"] = receivers
    if facts.inhibit_rules:
        config["inhibit_rules"] = [
            {
                "source_matchers": _strings(source),
                "target_matchers": _strings(target),
                **({"equal": list(equal)} if equal else {}),
            }
            for source, target, equal in facts.inhibit_rules
        ]
    if facts.time_intervals:
        config["time_intervals"] = [dict(t) for t in facts.time_intervals]
    text: str = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return text


def _strings(matchers: Sequence[Matcher]) -> list[str]:
    return [str(m) for m in matchers]


def _route(node: RouteNode, root: bool = False) -> dict[str, Any]:
    receivers = node_receivers(node)
    out: dict[str, Any] = {}
    if receivers:
        # Alertmanager's node has one receiver; a node with several channels names the first.
        out["receiver"] = receivers[0]
    out["group_by"] = ["..."] if node.group_by is None else list(node.group_by)
    if not root and node.matchers:
        out["matchers"] = _strings(node.matchers)
    if node.continue_:
        out["continue"] = True
    out["group_wait"] = format_duration(node.group_wait)
    out["group_interval"] = format_duration(node.group_interval)
    out["repeat_interval"] = format_duration(node.repeat_interval)
    if node.mute_time_intervals:
        out["mute_time_intervals"] = [name for name, _ in node.mute_time_intervals]
    if node.active_time_intervals:
        out["active_time_intervals"] = [name for name, _ in node.active_time_intervals]
    if node.children:
        out["routes"] = [_route(child) for child in node.children]
    return out
