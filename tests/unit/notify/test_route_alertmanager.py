"""Alertmanager's own routing cases (`dispatch/route_test.go`, TestRouteMatch and
TestRouteMatchers): the same trees and label sets give the same receivers, group_by, timers and
keys, through the route builder and through `sentinel route test --json`.

Receivers are channels of the same name. The root's defaults are sentinel's (group_wait 10 s,
group_by [alertname]) where Alertmanager's are 30 s and []: `DEF` below is what a node inherits
from a root that sets nothing, as `def` is there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentinel.cli import _parser
from sentinel.cli import route as route_cli
from sentinel.config import parse
from sentinel.model import Labels
from sentinel.notify.route import DEFAULT_GROUP_BY, DEFAULTS, build_from

CHANNELS = """
channels:
  notify-def: {type: log}
  notify-A: {type: log}
  notify-BC: {type: log}
  notify-testing: {type: log}
  notify-productionA: {type: log}
  notify-productionB: {type: log}
"""

MATCH_TREE = """
route:
  receiver: 'notify-def'
  routes:
  - match:
      owner: 'team-A'
    receiver: 'notify-A'
    routes:
    - match:
        env: 'testing'
      receiver: 'notify-testing'
      group_by: [...]
    - match:
        env: "production"
      receiver: 'notify-productionA'
      group_wait: 1m
      continue: true
    - match_re:
        env: "produ.*"
        job: ".*"
      receiver: 'notify-productionB'
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: ['job']
  - match_re:
      owner: 'team-(B|C)'
    group_by: ['foo', 'bar']
    group_wait: 2m
    receiver: 'notify-BC'
  - match:
      group_by: 'role'
    group_by: ['role']
    routes:
    - match:
        env: 'testing'
      receiver: 'notify-testing'
      routes:
      - match:
          wait: 'long'
        group_wait: 2m
"""

MATCHERS_TREE = """
route:
  receiver: 'notify-def'
  routes:
  - matchers: ['{owner="team-A"}', '{level!="critical"}']
    receiver: 'notify-A'
    routes:
    - matchers: ['{env="testing"}', '{baz!~".*quux"}']
      receiver: 'notify-testing'
      group_by: [...]
    - matchers: ['{env="production"}']
      receiver: 'notify-productionA'
      group_wait: 1m
      continue: true
    - matchers: [ env=~"produ.*", job=~".*"]
      receiver: 'notify-productionB'
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: ['job']
  - matchers: [owner=~"team-(B|C)"]
    group_by: ['foo', 'bar']
    group_wait: 2m
    receiver: 'notify-BC'
  - matchers: [group_by="role"]
    group_by: ['role']
    routes:
    - matchers: ['{env="testing"}']
      receiver: 'notify-testing'
      routes:
      - matchers: [wait="long"]
        group_wait: 2m
"""

DEF: dict[str, Any] = {
    "group_by": list(DEFAULT_GROUP_BY),
    "group_wait": DEFAULTS["group_wait"],
    "group_interval": DEFAULTS["group_interval"],
    "repeat_interval": DEFAULTS["repeat_interval"],
}


def opts(receiver: str, **kw: Any) -> dict[str, Any]:
    return {"receiver": receiver, "channels": [receiver], **DEF, **kw}


# (labels, expected nodes, keys under MATCH_TREE, keys under MATCHERS_TREE)
CASES: list[tuple[dict[str, str], list[dict[str, Any]], list[str], list[str]]] = [
    (
        {"owner": "team-A"},
        [opts("notify-A")],
        ['{}/{owner="team-A"}'],
        ['{}/{level!="critical",owner="team-A"}'],
    ),
    (
        {"owner": "team-A", "env": "unset"},
        [opts("notify-A")],
        ['{}/{owner="team-A"}'],
        ['{}/{level!="critical",owner="team-A"}'],
    ),
    (
        {"owner": "team-C"},
        [opts("notify-BC", group_by=["foo", "bar"], group_wait=120.0)],
        ['{}/{owner=~"^(?:team-(B|C))$"}'],
        ['{}/{owner=~"team-(B|C)"}'],
    ),
    (
        {"owner": "team-A", "env": "testing"},
        [opts("notify-testing", group_by=None)],
        ['{}/{owner="team-A"}/{env="testing"}'],
        ['{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}'],
    ),
    (
        {"owner": "team-A", "env": "production"},
        [
            opts("notify-productionA", group_wait=60.0),
            opts(
                "notify-productionB",
                group_by=["job"],
                group_wait=30.0,
                group_interval=300.0,
                repeat_interval=3600.0,
            ),
        ],
        [
            '{}/{owner="team-A"}/{env="production"}',
            '{}/{owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}',
        ],
        [
            '{}/{level!="critical",owner="team-A"}/{env="production"}',
            '{}/{level!="critical",owner="team-A"}/{env=~"produ.*",job=~".*"}',
        ],
    ),
    (
        {"group_by": "role"},
        [opts("notify-def", group_by=["role"])],
        ['{}/{group_by="role"}'],
        ['{}/{group_by="role"}'],
    ),
    (
        {"env": "testing", "group_by": "role"},
        [opts("notify-testing", group_by=["role"])],
        ['{}/{group_by="role"}/{env="testing"}'],
        ['{}/{group_by="role"}/{env="testing"}'],
    ),
    (
        {"env": "testing", "group_by": "role", "wait": "long"},
        [opts("notify-testing", group_by=["role"], group_wait=120.0)],
        ['{}/{group_by="role"}/{env="testing"}/{wait="long"}'],
        ['{}/{group_by="role"}/{env="testing"}/{wait="long"}'],
    ),
]

TREES = {"match": (MATCH_TREE, 2), "matchers": (MATCHERS_TREE, 3)}
PARAMS = [
    pytest.param(tree, labels, nodes, case[index], id=f"{tree}-{i}")
    for tree, (_, index) in TREES.items()
    for i, case in enumerate(CASES)
    for labels, nodes in [case[:2]]
]


def main(argv: list[str]) -> int:
    # The command without sentinel.cli.main's logging setup, which would outlive the test.
    return route_cli.run(_parser().parse_args(argv))


def seen(node: Any) -> dict[str, Any]:
    return {
        "receiver": node.receiver,
        "channels": list(node.channels),
        "group_by": None if node.group_by is None else list(node.group_by),
        "group_wait": node.group_wait,
        "group_interval": node.group_interval,
        "repeat_interval": node.repeat_interval,
    }


@pytest.mark.parametrize(("tree", "labels", "nodes", "keys"), PARAMS)
def test_route_builder(
    tree: str, labels: dict[str, str], nodes: list[dict[str, Any]], keys: list[str]
) -> None:
    root = build_from(parse(TREES[tree][0] + CHANNELS, env={}))
    assert root is not None
    got = root.match(Labels(labels))
    assert [seen(n) for n in got] == nodes
    assert [n.key for n in got] == keys


@pytest.mark.parametrize(("tree", "labels", "nodes", "keys"), PARAMS)
def test_route_test_json(
    tree: str,
    labels: dict[str, str],
    nodes: list[dict[str, Any]],
    keys: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TREES[tree][0] + CHANNELS)
    args = ["route", "test", "-c", str(path), "--json", *(f"{k}={v}" for k, v in labels.items())]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    wanted = {"key", "receiver", "channels", "group_by", "group_wait", "group_interval"}
    wanted |= {"repeat_interval"}
    assert [{k: v for k, v in n.items() if k in wanted} for n in out] == [
        {"key": key, **node} for key, node in zip(keys, nodes, strict=True)
    ]


def test_route_test_text_names_the_receivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(MATCHERS_TREE + CHANNELS)
    assert main(["route", "test", "-c", str(path), "owner=team-A", "env=production"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "notify-productionA,notify-productionB"  # as amtool config routes test


def test_route_test_refuses_a_matcher_for_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(MATCHERS_TREE + CHANNELS)
    assert main(["route", "test", "-c", str(path), "owner=~team-.*"]) == 2
    assert "LABEL=VALUE" in capsys.readouterr().err


def test_route_show_prints_every_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(MATCHERS_TREE + CHANNELS)
    assert main(["route", "show", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Routing tree:"
    assert lines[1].startswith("default-route  receiver: notify-def")
    assert len(lines) == 2 + 8  # the root and its eight descendants
    assert any('└── {wait="long"}  receiver: notify-testing' in line for line in lines)
