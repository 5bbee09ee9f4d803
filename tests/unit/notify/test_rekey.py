"""Group keys written before 0.2 (sentinel's own node keys) are moved to Alertmanager's at
start: a group under a `match_re` node that paged before the upgrade is not paged again."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.pipeline import Dispatcher, group_key
from sentinel.notify.route import RouteNode, build_from
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silencer
from tests.helpers import T0

CONFIG = r"""
route:
  channels: [pager]
  group_wait: 0s
  group_interval: 1m
  routes:
    - match_re: {queue: 'billing\..*'}            # (0,)
      match: {severity: critical}
      routes:
        - match: {team: db}                       # (0, 0)
    - match: {severity: warning}                  # (1,): unchanged
    - matchers: ['env!="dev"']                    # (2,): no earlier version read it
      routes:
        - match_re: {queue: "x.*"}                # (2, 0)
channels:
  pager: {type: log}
"""

# What the version before 0.2 called these nodes (hand-written from its key format).
LEGACY = [
    ((0,), r'{}/{severity="critical",queue=~"billing\..*"}'),
    ((0, 0), r'{}/{severity="critical",queue=~"billing\..*"}/{team="db"}'),
    ((1,), '{}/{severity="warning"}'),
    ((2,), None),
    ((2, 0), None),
]


def node_at(root: RouteNode, path: tuple[int, ...]) -> RouteNode:
    for i in path:
        root = root.children[i]
    return root


def tree() -> RouteNode:
    root = build_from(parse(CONFIG, env={}))
    assert root is not None
    return root


@pytest.mark.parametrize(("path", "legacy"), LEGACY)
def test_legacy_keys(path: tuple[int, ...], legacy: str | None) -> None:
    node = node_at(tree(), path)
    assert node.legacy_key == legacy
    if path == (0,):
        assert node.key == r'{}/{queue=~"^(?:billing\\..*)$",severity="critical"}'
    if path == (1,):
        assert node.key == legacy


class Recorder:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, notification: object) -> dict[str, str]:
        self.sent.append(notification)
        return {}


def test_a_group_paged_under_its_old_key_is_not_paged_again(tmp_path: Path) -> None:
    root = tree()
    node = node_at(root, (0, 0))
    alert = Alert(
        "QueueBacklog",
        Labels(alertname="QueueBacklog", severity="critical", queue="billing.eu", team="db"),
        {},
        State.FIRING,
        T0,
        1.0,
        0.0,
        fired_at=T0,
    )
    labels = Labels(node.group_labels(alert.labels))
    assert node.legacy_key is not None
    old_key = node.legacy_key + ":" + repr(labels)
    db = Database(tmp_path / "state.db")
    with db.transaction() as conn:  # the page the old version sent
        NotificationLog.record(conn, old_key, "pager", [alert.fingerprint], [], T0 - 60, {})

    clock = FakeClock(T0)
    config = parse(CONFIG, env={})
    dispatcher = Dispatcher(root, config.channels, db, Silencer(None), Inhibitor(()))
    recorder = Recorder()
    sender = Sender(db, config.channels, clock, notifiers={"pager": recorder})
    assert NotificationLog(db).get(group_key(node, labels), "pager") is not None
    assert NotificationLog(db).get(old_key, "pager") is None
    for t in range(0, 600, 15):
        clock.set(T0 + t)
        dispatcher.tick([alert], T0 + t)
        sender.drain()
    assert recorder.sent == []

    # A second start finds nothing left under the old keys and changes nothing.
    before = db.query("SELECT group_key, sent_at FROM nflog")
    Dispatcher(tree(), config.channels, db, Silencer(None), Inhibitor(()))
    assert [tuple(r) for r in db.query("SELECT group_key, sent_at FROM nflog")] == [
        tuple(r) for r in before
    ]
