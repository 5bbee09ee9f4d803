"""The routing and inhibition keys in Alertmanager's spelling: what is accepted, and every
mistake named with its path."""

from __future__ import annotations

import pytest

from sentinel.config import ConfigError, parse
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.route import build_from

CHANNELS = "channels:\n  a: {type: log}\n  b: {type: log}\n"
NIGHTS = """
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: 22:00, end_time: 24:00}]
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(text, env={})
    return e.value.errors


def test_a_pasted_alertmanager_tree_parses() -> None:
    config = parse(
        CHANNELS
        + NIGHTS
        + """
receivers: {team-x: [a, b]}
route:
  receiver: a
  group_by: ['...']
  routes:
    - matchers: ['severity="critical"', 'queue=~"billing.*"', env!="dev", 'task!~"tmp.*"']
      receiver: team-x
      mute_time_intervals: [nights]
inhibit_rules:
  - source_matchers: [alertname="NoLiveWorkers"]
    target_matchers: ['alertname=~"Queue.*"']
    equal: [env]
""",
        env={},
    )
    root = build_from(config)
    assert root is not None and root.group_by is None
    child = root.children[0]
    assert child.receiver == "team-x" and child.channels == ("a", "b")
    assert [str(m) for m in child.matchers] == [
        'env!="dev"',
        'queue=~"billing.*"',
        'severity="critical"',
        'task!~"tmp.*"',
    ]
    assert [name for name, _ in child.mute_time_intervals] == ["nights"]
    assert len(config.inhibit) == 1 and config.inhibit[0].equal == ("env",)


def alert(**labels: str) -> Alert:
    return Alert("r", Labels(labels), {}, State.FIRING, 0.0, 1.0, 0.0, fired_at=0.0)


def test_inhibit_in_both_spellings_is_one_rule_of_all_matchers() -> None:
    config = parse(
        """
inhibit:
  - source: {alertname: A}
    source_matchers: ['env="prod"']
    target_matchers: ['alertname=~"B|C"']
    target_match: {team: db}
    equal: [queue]
""",
        env={},
    )
    inhibitor = Inhibitor(config.inhibit)
    source = alert(alertname="A", env="prod", queue="q")
    inhibitor.update([source])
    assert inhibitor.muted_by(Labels(alertname="B", team="db", queue="q"), 0) == [
        source.fingerprint
    ]
    assert inhibitor.muted_by(Labels(alertname="B", team="web", queue="q"), 0) == []
    assert inhibitor.muted_by(Labels(alertname="B", team="db", queue="other"), 0) == []
    inhibitor.update([alert(alertname="A", env="dev", queue="q")])
    assert inhibitor.muted_by(Labels(alertname="B", team="db", queue="q"), 0) == []


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("route: {receiver: a, channels: [a]}", "route", "either receiver or channels"),
        ("route: {receiver: nope}", "route.receiver", "undefined receiver 'nope'"),
        ("receivers: {x: [a, nope]}\nroute: {receiver: x}", "receivers.x[1]", "undefined channel"),
        ("route: {matchers: ['a=~\"(\"']}", "route.matchers", "invalid regular expression"),
        ("route: {matchers: ['1a=b']}", "route.matchers", "bad matcher format"),
        ("route: {matchers: 'a=b'}", "route.matchers", ""),
        (
            "route: {routes: [{mute_time_intervals: [nope]}]}" + NIGHTS,
            "route.routes[0].mute_time_intervals[0]",
            "undefined time interval 'nope'",
        ),
        (
            "route: {routes: [{active_time_intervals: [nope]}]}",
            "route.routes[0].active_time_intervals[0]",
            "undefined time interval 'nope'",
        ),
        (
            "route: {mute_time_intervals: [nights]}" + NIGHTS,
            "route.mute_time_intervals",
            "root route cannot have any",
        ),
        (
            "time_intervals: [{name: x, time_intervals: [{weekdays: [funday]}]}]",
            "time_intervals",
            "funday",
        ),
        (
            "time_intervals: [{name: x}, {name: x}]",
            "time_intervals",
            "not unique",
        ),
        (
            "inhibit_rules: [{source_matchers: ['a=~\"(\"'], target_matchers: [b=c]}]",
            "inhibit[0].source_matchers",
            "invalid regular expression",
        ),
        ("inhibit_rules: [{source_matchers: [a=b]}]", "inhibit[0]", "source and a target"),
        ("inhibit: []\ninhibit_rules: []", "", "either inhibit or inhibit_rules"),
    ],
)
def test_mistakes_are_named(text: str, where: str, message: str) -> None:
    errors = errors_of(CHANNELS + text)
    assert any(e.startswith(where) and message in e for e in errors), errors
