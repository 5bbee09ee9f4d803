"""A new rule kind or channel is one module plus one registry line: a throwaway kind,
registered for one test, goes through config parsing, evaluation, the alert book, the display
and the liveness watch; a throwaway channel through parsing (with a `_file` secret and the
placeholder check) and a send, without any other file knowing them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from sentinel import channels, rules
from sentinel.alerts.book import AlertBook
from sentinel.channels import testalert
from sentinel.channels.base import ChannelBase, ChannelKind, Notification
from sentinel.config import ConfigError, parse
from sentinel.config.check import secret_problems
from sentinel.display import format_value
from sentinel.facts.store import FactStore
from sentinel.fields import MessageCount
from sentinel.model import Sample, State
from sentinel.rules.base import RuleBase, RuleKind
from tests.helpers import T0


class ThrowawayRule(RuleBase):
    kind: Literal["throwaway"]
    above: MessageCount = 5


def evaluate(rule: ThrowawayRule, store: FactStore, now: float) -> list[Sample]:
    return [
        Sample({"queue": name}, float(q.depth), float(rule.above), q.depth > rule.above)
        for name, q in store.queues.items()
        if q.depth is not None
    ]


KIND = RuleKind(
    kind="throwaway",
    evaluate=evaluate,
    schema=ThrowawayRule,
    summary="{{ labels.queue }} holds {{ value|number }}",
    unit="percent",
    liveness=True,
)

CONFIG = "rules:\n  - {name: Throwaway, kind: throwaway, above: 3}\n"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rules.RULES, "throwaway", KIND)  # the one registry line


def test_a_registered_kind_parses_evaluates_and_pages(registered: None) -> None:
    config = parse(CONFIG, {})
    [rule] = config.rules
    assert isinstance(rule, ThrowawayRule) and rule.above == 3

    store = FactStore()
    store.set_queue_depths({"celery": (7, 1), "idle": (1, 1)}, {}, T0)
    book = AlertBook(None)
    book.tick(config.rules, store, T0)
    [alert] = book.alerts.values()
    assert alert.state is State.FIRING  # for: 0
    assert alert.labels["queue"] == "celery"
    assert alert.annotations["summary"] == "celery holds 7"

    assert format_value("throwaway", 0.25) == "25.0%"
    assert rules.liveness("throwaway")
    assert rules.holds_during_outage("throwaway")


def test_a_kind_schema_is_strict_like_every_other(registered: None) -> None:
    with pytest.raises(ConfigError) as e:
        parse("rules:\n  - {name: T, kind: throwaway, above: 0, extra: 1}\n", {})
    assert any("extra" in line for line in e.value.errors)
    assert any("above" in line for line in e.value.errors)


def test_an_unregistered_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse(CONFIG, {})


# --- a throwaway channel -------------------------------------------------------------------


class PigeonChannel(ChannelBase):
    SECRETS = ("token",)
    type: Literal["pigeon"]
    token: SecretStr
    loft: str


class PigeonNotifier:
    sent: list[tuple[str, Notification]] = []

    def __init__(self, name: str, config: PigeonChannel) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Mapping[str, str]:
        self.sent.append((self.config.token.get_secret_value(), notification))
        return {"ring": self.config.loft}


PIGEON = ChannelKind(type="pigeon", schema=PigeonChannel, notifier=PigeonNotifier)


@pytest.fixture
def pigeon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(channels.CHANNELS, "pigeon", PIGEON)  # the one registry line
    PigeonNotifier.sent = []


def test_a_registered_channel_parses_with_a_file_secret_and_sends(
    pigeon: None, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-coo\n")
    config = parse(
        "route: {channels: [birds]}\n"
        "channels:\n"
        f"  birds: {{type: pigeon, loft: north, token_file: {secret}}}\n",
        {},
    )
    birds = config.channels["birds"]
    assert isinstance(birds, PigeonChannel)
    assert birds.token.get_secret_value() == "s3cr3t-coo"
    assert secret_problems(config) == []

    notifier: Any = channels.build("birds", birds)
    [first, *_] = testalert.test_notifications("birds", T0)
    assert notifier.send(first) == {"ring": "north"}
    assert PigeonNotifier.sent == [("s3cr3t-coo", first)]


def test_a_registered_channel_secret_is_checked_for_placeholders(pigeon: None) -> None:
    config = parse(
        "route: {channels: [birds]}\n"
        "channels:\n"
        "  birds: {type: pigeon, loft: north, token: changeme}\n",
        {},
    )
    [problem] = secret_problems(config)
    assert problem.startswith("channels.birds.token: looks like a placeholder")


def test_an_unregistered_channel_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse("channels:\n  birds: {type: pigeon, loft: north, token: x}\n", {})
