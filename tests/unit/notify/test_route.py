"""The routing tree: matching, inheritance, group_by and grouping keys (Alertmanager semantics)."""

from __future__ import annotations

import pytest

from sentinel.config import parse
from sentinel.model import Labels
from sentinel.notify.pipeline import group_key
from sentinel.notify.route import DEFAULTS, RouteNode, build

CHANNELS = """
channels:
  a: {type: log}
  b: {type: log}
  c: {type: log}
"""

TREE = """
route:
  channels: [a]
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - match: {severity: critical}                 # (0,)
      channels: [b]
      group_wait: 0s
      routes:
        - match: {team: db}                       # (0, 0)
          channels: [c]
          group_by: [alertname, queue]
        - match: {team: db}                       # (0, 1): shadowed by (0, 0)
          channels: [a]
    - match_re: {queue: "billing.*"}              # (1,)
      channels: [c]
      continue: true
    - match: {env: staging}                       # (2,)
      channels: [b]
      repeat_interval: 10m
    - match: {env: staging}                       # (3,): shadowed by (2,)
      group_by: ["..."]
    - match: {env: dev}                           # (4,)
      group_by: ["..."]
"""


def tree(text: str) -> RouteNode:
    config = parse(text + CHANNELS, env={})
    assert config.route is not None
    return build(config.route)


def node_at(root: RouteNode, path: tuple[int, ...]) -> RouteNode:
    node = root
    for i in path:
        node = node.children[i]
    return node


@pytest.fixture(scope="module")
def root() -> RouteNode:
    return tree(TREE)


MATCHES = [
    ("no child matches -> the root", {"alertname": "X", "severity": "warning"}, [()]),
    ("no labels at all -> the root", {}, [()]),
    ("child matches, no grandchild -> falls back to the child", {"severity": "critical"}, [(0,)]),
    (
        "nested: the grandchild takes it",
        {"severity": "critical", "team": "db"},
        [(0, 0)],
    ),
    (
        "first match wins: a later child that also matches is not reached",
        {"severity": "critical", "queue": "billing.charge", "env": "staging"},
        [(0,)],
    ),
    (
        "continue: true -> the next matching sibling takes it too",
        {"queue": "billing.charge", "env": "staging"},
        [(1,), (2,)],
    ),
    ("continue: true and nothing else matches -> only that child", {"queue": "billing"}, [(1,)]),
    ("match_re is anchored at the start", {"queue": "xbilling.charge"}, [()]),
    ("match_re on a missing label does not match", {"alertname": "billing"}, [()]),
    ("match is exact, not a substring", {"severity": "critical2"}, [()]),
    ("first of two identical siblings wins", {"env": "staging"}, [(2,)]),
    ("later sibling", {"env": "dev"}, [(4,)]),
]


@pytest.mark.parametrize(
    ("labels", "expected"), [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES]
)
def test_match(root: RouteNode, labels: dict[str, str], expected: list[tuple[int, ...]]) -> None:
    got = root.match(Labels(labels))
    assert [n.key for n in got] == [node_at(root, p).key for p in expected]
    for node, path in zip(got, expected, strict=True):
        assert node is node_at(root, path)


def test_keys_are_unique_even_for_identical_siblings(root: RouteNode) -> None:
    keys = []

    def walk(node: RouteNode) -> None:
        keys.append(node.key)
        for child in node.children:
            walk(child)

    walk(root)
    assert len(keys) == len(set(keys)) == 8
    assert root.key == "{}"
    assert node_at(root, (0,)).key.startswith("{}/")
    assert node_at(root, (0, 0)).key.startswith(node_at(root, (0,)).key + "/")


# path -> channels, group_by, group_wait, group_interval, repeat_interval
INHERITED = [
    ("root", (), ("a",), ("alertname",), 10.0, 60.0, 3600.0),
    ("child overrides channels and group_wait", (0,), ("b",), ("alertname",), 0.0, 60.0, 3600.0),
    (
        "grandchild inherits from its parent, not the root",
        (0, 0),
        ("c",),
        ("alertname", "queue"),
        0.0,
        60.0,
        3600.0,
    ),
    ("child overrides repeat_interval", (2,), ("b",), ("alertname",), 10.0, 60.0, 600.0),
    ("child without channels inherits them", (3,), ("a",), None, 10.0, 60.0, 3600.0),
]


@pytest.mark.parametrize(
    ("path", "channels", "group_by", "wait", "interval", "repeat"),
    [i[1:] for i in INHERITED],
    ids=[i[0] for i in INHERITED],
)
def test_inherited_settings(
    root: RouteNode,
    path: tuple[int, ...],
    channels: tuple[str, ...],
    group_by: tuple[str, ...] | None,
    wait: float,
    interval: float,
    repeat: float,
) -> None:
    node = node_at(root, path)
    assert node.channels == channels
    assert node.group_by == group_by
    assert (node.group_wait, node.group_interval, node.repeat_interval) == (
        wait,
        interval,
        repeat,
    )


def test_root_defaults_and_children_inherit_them() -> None:
    node = tree(
        """
route:
  channels: [a]
  routes:
    - match: {severity: critical}
      group_interval: 2m
"""
    )
    assert (node.group_wait, node.group_interval, node.repeat_interval) == (
        DEFAULTS["group_wait"],
        DEFAULTS["group_interval"],
        DEFAULTS["repeat_interval"],
    )
    child = node.children[0]
    assert child.channels == ("a",)
    assert child.group_by == node.group_by
    assert (child.group_wait, child.group_interval, child.repeat_interval) == (
        DEFAULTS["group_wait"],
        120.0,
        DEFAULTS["repeat_interval"],
    )


def test_group_by_is_inherited_from_the_nearest_ancestor() -> None:
    node = tree(
        """
route:
  channels: [a]
  group_by: [queue]
  routes:
    - match: {severity: critical}
      routes:
        - match: {team: db}
    - match: {severity: info}
      group_by: ["..."]
      routes:
        - match: {team: db}
"""
    )
    assert node.children[0].group_by == ("queue",)
    assert node.children[0].children[0].group_by == ("queue",)
    assert node.children[1].children[0].group_by is None


def test_group_by_all_labels(root: RouteNode) -> None:
    node = node_at(root, (4,))
    labels = Labels(alertname="IdleWorker", env="dev", worker="w1@h")
    assert node.group_by is None
    assert node.group_labels(labels) == dict(labels)


def test_group_labels_pick_only_group_by_and_skip_missing(root: RouteNode) -> None:
    node = node_at(root, (0, 0))
    full = Labels(alertname="QueueBacklog", severity="critical", team="db", queue="q1", x="y")
    assert node.group_labels(full) == {"alertname": "QueueBacklog", "queue": "q1"}
    no_queue = Labels(alertname="QueueBacklog", severity="critical", team="db")
    assert node.group_labels(no_queue) == {"alertname": "QueueBacklog"}


def key_for(node: RouteNode, labels: dict[str, str]) -> str:
    return group_key(node, Labels(node.group_labels(Labels(labels))))


# (path of the node, labels 1, labels 2, same group?)
KEYS = [
    (
        "group_by alertname: other labels differ -> same group",
        (),
        {"alertname": "QueueBacklog", "queue": "q1"},
        {"alertname": "QueueBacklog", "queue": "q2"},
        True,
    ),
    (
        "group_by alertname: alertname differs -> different groups",
        (),
        {"alertname": "QueueBacklog", "queue": "q1"},
        {"alertname": "IdleWorker", "queue": "q1"},
        False,
    ),
    (
        "group_by [alertname, queue]: queue differs -> different groups",
        (0, 0),
        {"alertname": "QueueBacklog", "queue": "q1", "team": "db"},
        {"alertname": "QueueBacklog", "queue": "q2", "team": "db"},
        False,
    ),
    (
        "group_by [alertname, queue]: extra label differs -> same group",
        (0, 0),
        {"alertname": "QueueBacklog", "queue": "q1", "team": "db", "env": "a"},
        {"alertname": "QueueBacklog", "queue": "q1", "team": "db", "env": "b"},
        True,
    ),
    (
        "group_by ...: any label differs -> different groups",
        (4,),
        {"alertname": "IdleWorker", "env": "dev", "worker": "w1"},
        {"alertname": "IdleWorker", "env": "dev", "worker": "w2"},
        False,
    ),
    (
        "group_by ...: identical labels -> same group",
        (4,),
        {"alertname": "IdleWorker", "env": "dev", "worker": "w1"},
        {"worker": "w1", "env": "dev", "alertname": "IdleWorker"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("path", "first", "second", "same"), [k[1:] for k in KEYS], ids=[k[0] for k in KEYS]
)
def test_group_keys(
    root: RouteNode,
    path: tuple[int, ...],
    first: dict[str, str],
    second: dict[str, str],
    same: bool,
) -> None:
    node = node_at(root, path)
    assert (key_for(node, first) == key_for(node, second)) is same


def test_same_labels_on_different_routes_are_different_groups(root: RouteNode) -> None:
    labels = {"alertname": "QueueBacklog", "env": "staging"}
    assert key_for(node_at(root, (2,)), labels) != key_for(node_at(root, (3,)), labels)
    assert key_for(root, labels) != key_for(node_at(root, (2,)), labels)


def test_group_key_is_stable_across_builds(root: RouteNode) -> None:
    again = tree(TREE)
    labels = {"alertname": "QueueBacklog", "severity": "critical", "team": "db", "queue": "q"}
    assert key_for(node_at(root, (0, 0)), labels) == key_for(node_at(again, (0, 0)), labels)
