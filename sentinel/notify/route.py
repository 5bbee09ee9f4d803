"""The routing tree, with Alertmanager's semantics: children inherit their parent's settings,
the first matching child wins unless it says `continue: true`, and an alert no child takes
stays with the parent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sentinel.config.schema import Route
from sentinel.notify.silence import Matcher

# group_wait is shorter than Alertmanager's 30 s: a dead worker should page within 20 s.
DEFAULTS = {"group_wait": 10.0, "group_interval": 300.0, "repeat_interval": 4 * 3600.0}


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

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

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


def build(route: Route, parent: RouteNode | None = None, index: int = 0) -> RouteNode:
    matchers = tuple(Matcher(k, v) for k, v in sorted(route.match.items())) + tuple(
        Matcher(k, v, is_regex=True) for k, v in sorted(route.match_re.items())
    )
    if parent is None:
        key = "{}"
    else:
        key = parent.key + "/{" + ",".join(str(m) for m in matchers) + "}"
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
        group_by = parent.group_by if parent is not None else ("alertname",)
    node = RouteNode(
        key=key,
        matchers=matchers,
        channels=tuple(route.channels)
        if route.channels is not None
        else (parent.channels if parent is not None else ()),
        group_by=group_by,
        group_wait=pick("group_wait"),
        group_interval=pick("group_interval"),
        repeat_interval=pick("repeat_interval"),
        continue_=route.continue_,
        children=(),
    )
    children: list[RouteNode] = []
    for i, child in enumerate(route.routes):
        # Children see the parent's settings; the parent is rebuilt with its children below.
        children.append(build(child, _with_children(node, tuple(children)), i))
    return _with_children(node, tuple(children))


def _with_children(node: RouteNode, children: tuple[RouteNode, ...]) -> RouteNode:
    from dataclasses import replace

    return replace(node, children=children)
