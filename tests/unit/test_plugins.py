"""A new rule kind is one module plus one registry line: a throwaway kind, registered for one
test, goes through config parsing, evaluation, the alert book, the display and the liveness
watch without any other file knowing it."""

from __future__ import annotations

from typing import Literal

import pytest

from sentinel import rules
from sentinel.alerts.book import AlertBook
from sentinel.config import ConfigError, parse
from sentinel.display import format_value
from sentinel.facts.store import FactStore
from sentinel.fields import MessageCount
from sentinel.model import Sample, State
from sentinel.rules.base import RuleBase, RuleKind

T0 = 1_700_000_000.0


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
