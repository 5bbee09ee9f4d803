"""The routing tree, with Alertmanager's semantics (`dispatch/route.go`): children inherit
their parent's settings, the first matching child wins unless it says `continue: true`, and an
alert no child takes stays with the parent.

A node's matchers are its `match`, `match_re` and `matchers` together, sorted as Alertmanager
sorts them, and its key prints them as Alertmanager's `Route.Key()` does (a `match_re` value
anchored as `^(?:...)$`, the form Alertmanager keeps it in), so group keys and `route test`
agree with `amtool config routes test`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sentinel.config.schema import Config, Route
from sentinel.notify.matchers import (
    Matcher,
    format_matchers,
    matches_all,
    parse_config_matchers,
    sort_key,
)
from sentinel.notify.timeintervals import TimeInterval

# group_wait is shorter than Alertmanager's 30 s: a dead worker should page within 20 s.
DEFAULTS = {"group_wait": 10.0, "group_interval": 300.0, "repeat_interval": 4 * 3600.0}
DEFAULT_GROUP_BY = ("alertname",)  # Alertmanager's root groups everything together: ()

Intervals = tuple[tuple[str, tuple[TimeInterval, ...]], ...]  # (name, specs), as configured


@dataclass(frozen=True)
class RouteNode:
    key: str  # Alertmanager-style path: {}/{severity="critical"}
    matchers: tuple[Matcher, ...]
    channels: tuple[str, ...]
    group_by: tuple[str, ...] | None  # None: group by every label ("...")
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool
    children: tuple[RouteNode, ...]
    receiver: str | None = None  # the `receiver:` that named the channels, if one did
    # As in Alertmanager these are the node's own, never inherited.
    mute_time_intervals: Intervals = ()
    active_time_intervals: Intervals = ()
    # The key this node had before 0.2 (match_re unanchored, values unescaped; None if no
    # earlier version could read it): rekey.py moves its groups' state to `key` at start.
    legacy_key: str | None = field(default=None, compare=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def match(self, labels: Mapping[str, str]) -> list[RouteNode]:
        """The nodes that take an alert with these labels (the root matches everything)."""
        out: list[RouteNode] = []
        for child in self.children:
            if child.matches(labels):
                out.extend(child.match(labels))
                if not child.continue_:
                    break
        return out or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by is None:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def time_muted(self, now: float | datetime) -> str | None:
        """The interval that keeps this node quiet at `now` (`mute_time_intervals` it falls
        in, or `active_time_intervals` it falls outside of), else None."""
        for name, specs in self.mute_time_intervals:
            if any(spec.contains(now) for spec in specs):
                return name
        if self.active_time_intervals and not any(
            spec.contains(now) for _, specs in self.active_time_intervals for spec in specs
        ):
            return "outside " + ",".join(name for name, _ in self.active_time_intervals)
        return None


def node_matchers(route: Route) -> tuple[Matcher, ...]:
    """`match`, `match_re` and `matchers` as one list in Alertmanager's order."""
    out = [Matcher(k, "=", v) for k, v in route.match.items()]
    out += [Matcher(k, "=~", f"^(?:{v})$") for k, v in route.match_re.items()]
    out += parse_config_matchers(route.matchers)
    return tuple(sorted(out, key=sort_key))


def build(
    route: Route,
    parent: RouteNode | None = None,
    index: int = 0,
    *,
    receivers: Mapping[str, tuple[str, ...]] | None = None,
    intervals: Mapping[str, tuple[TimeInterval, ...]] | None = None,
) -> RouteNode:
    """The tree for `route`; `receivers` maps `receiver:` names to channels (a name it does
    not hold is the channel of that name), `intervals` holds the named time intervals."""
    receivers = receivers or {}
    intervals = intervals or {}
    matchers = node_matchers(route)
    if parent is None:
        key = "{}"
    else:
        key = parent.key + "/" + format_matchers(matchers)
        # Alertmanager's Key() is not unique between siblings with the same matchers; here
        # the key also names the group, so a second such sibling gets its index.
        if any(c.key == key for c in parent.children):
            key += f"[{index}]"

    def pick(name: str) -> float:
        value = getattr(route, name)
        if value is not None:
            return float(value)
        return getattr(parent, name) if parent is not None else DEFAULTS[name]

    group_by: tuple[str, ...] | None
    if route.group_by is not None:
        group_by = None if "..." in route.group_by else tuple(route.group_by)
    else:
        group_by = parent.group_by if parent is not None else DEFAULT_GROUP_BY
    if route.receiver is not None:
        channels = receivers.get(route.receiver, (route.receiver,))
        receiver: str | None = route.receiver
    elif route.channels is not None:
        channels, receiver = tuple(route.channels), None
    elif parent is not None:
        channels, receiver = parent.channels, parent.receiver
    else:
        channels, receiver = (), None
    legacy = _legacy_key(route, parent, index)
    node = RouteNode(
        key=key,
        matchers=matchers,
        channels=channels,
        group_by=group_by,
        group_wait=pick("group_wait"),
        group_interval=pick("group_interval"),
        repeat_interval=pick("repeat_interval"),
        continue_=route.continue_,
        children=(),
        receiver=receiver,
        mute_time_intervals=tuple((n, intervals[n]) for n in route.mute_time_intervals),
        active_time_intervals=tuple((n, intervals[n]) for n in route.active_time_intervals),
        legacy_key=legacy,
    )
    children: list[RouteNode] = []
    for i, child in enumerate(route.routes):
        # Children see the parent's settings; the parent is rebuilt with its children below.
        parent_so_far = replace(node, children=tuple(children))
        children.append(build(child, parent_so_far, i, receivers=receivers, intervals=intervals))
    return replace(node, children=tuple(children))


def _legacy_key(route: Route, parent: RouteNode | None, index: int) -> str | None:
    """The key sentinel gave this node before 0.2: `match` then `match_re` (each sorted by
    name, values unescaped and unanchored), [index] after a sibling with the same key. None
    where no such version could have read the node (it or an ancestor uses `matchers:`)."""
    if parent is None:
        return "{}"
    if route.matchers or parent.legacy_key is None:
        return None
    parts = [f'{k}="{v}"' for k, v in sorted(route.match.items())]
    parts += [f'{k}=~"{v}"' for k, v in sorted(route.match_re.items())]
    key = parent.legacy_key + "/{" + ",".join(parts) + "}"
    if any(c.legacy_key == key for c in parent.children):
        key += f"[{index}]"
    return key


def build_from(config: Config) -> RouteNode | None:
    """The tree of a whole Config (its route, receivers and time intervals), or None."""
    if config.route is None:
        return None
    return build(config.route, receivers=config.receivers, intervals=config.intervals())


def receiver_names(config: Config, route: RouteNode | None) -> list[str]:
    """Every name an alert's receivers can hold: the `receivers:` map's, the tree's
    `receiver:`s and the channels."""
    names = dict.fromkeys(config.receivers)
    stack = [route] if route is not None else []
    while stack:
        node = stack.pop(0)
        if node.receiver is not None:
            names[node.receiver] = None
        stack.extend(node.children)
    names |= dict.fromkeys(config.channels)
    return list(names)
