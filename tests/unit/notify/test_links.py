"""server.external_url reaches what is sent: the webhook's externalURL and each alert's
generatorURL, read at send time (a reload that changes it is seen by the next send)."""

from __future__ import annotations

from pathlib import Path

from sentinel.channels.base import Notification
from sentinel.channels.webhook import alertmanager_body
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.db.sqlite import Database
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from sentinel.notify.pipeline import Dispatcher
from sentinel.notify.route import build_from
from sentinel.notify.sender import Sender
from sentinel.notify.silence import Silencer
from tests.helpers import T0

CONFIG = """
server: {listen: "0.0.0.0:9808", external_url: "https://ops.example.com/sentinel/"}
route: {channels: [hook], group_wait: 0s}
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x"}
"""


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> dict[str, str]:
        self.sent.append(notification)
        return {}


def test_external_url_fills_external_and_generator_urls(tmp_path: Path) -> None:
    config = parse(CONFIG, env={})
    assert config.server.base_url == "https://ops.example.com/sentinel"
    db = Database(tmp_path / "state.db")
    recorder = Recorder()
    base = [config.server.base_url]
    clock = FakeClock(T0)
    sender = Sender(
        db,
        config.channels,
        clock,
        notifiers={"hook": recorder},
        external_url=lambda: base[0],
    )
    dispatcher = Dispatcher(build_from(config), config.channels, db, Silencer(None), Inhibitor(()))
    alert = Alert("A", Labels(alertname="A"), {}, State.FIRING, T0, 1.0, 0.0, fired_at=T0)

    dispatcher.tick([alert], T0)
    sender.drain()
    body = alertmanager_body(recorder.sent[-1])
    assert body["externalURL"] == "https://ops.example.com/sentinel"
    assert body["alerts"][0]["generatorURL"] == (
        f"https://ops.example.com/sentinel/#alert-{alert.fingerprint}"
    )
    assert body["alerts"][0]["fingerprint"] == alert.fingerprint

    base[0] = "https://moved.example.com"  # a reload
    gone = Alert("A", Labels(alertname="A"), {}, State.RESOLVED, T0, 0.0, 0.0, T0, T0 + 400)
    clock.set(T0 + 400)
    dispatcher.tick([gone], T0 + 400)
    sender.drain()
    body = alertmanager_body(recorder.sent[-1])
    assert body["status"] == "resolved"
    assert body["externalURL"] == "https://moved.example.com"
    assert body["alerts"][0]["generatorURL"].startswith("https://moved.example.com/#alert-")


def test_without_external_url_links_point_at_listen() -> None:
    assert parse("server: {listen: '127.0.0.1:9000'}", env={}).server.base_url == (
        "http://127.0.0.1:9000"
    )
