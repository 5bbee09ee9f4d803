from __future__ import annotations

from typing import Literal

from sentinel.facts.store import BROKER_SOURCES, FactStore
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind

SOURCES = BROKER_SOURCES


class BrokerUnreachableRule(RuleBase):
    kind: Literal["broker_unreachable"]

    def describe(self) -> str:
        return "the broker cannot be reached (events, inspect or queue depth probe failing)"


def failing(store: FactStore) -> list[str]:
    """The probes that cannot reach the broker now. Call with store.lock held."""
    return [s for s in SOURCES if (p := store.probes.get(s)) is not None and not p.ok]


def unreachable(store: FactStore) -> bool:
    return bool(failing(store))


def evaluate(rule: BrokerUnreachableRule, store: FactStore, now: float) -> list[Sample]:
    """One cluster-wide sample: seconds since sentinel last reached the broker (or since it
    started, when it never did), counted from the start of the outage so it only grows while
    the outage lasts, whichever probes come and go meanwhile. Once the broker is back, the
    value is how long the last outage lasted, which is what its resolve says.

    While the broker cannot be reached every other rule holds its state (it cannot tell), so
    this is the alert that says sentinel is blind: a broker outage stops every task too.
    """
    if not failing(store):
        known = any(store.probes.get(s) is not None for s in SOURCES)
        return [Sample({}, store.last_outage, 0.0, False if known else None)]
    since = store.outage_since if store.outage_since is not None else now
    return [Sample({}, max(0.0, now - since), 0.0, True)]


SUMMARY = "sentinel cannot reach the Celery broker (for {{ value|duration }})"

KIND = RuleKind(
    kind="broker_unreachable",
    evaluate=evaluate,
    schema=BrokerUnreachableRule,
    summary=SUMMARY,
    unit="seconds",
    holds_during_outage=False,  # it reports the outage the others hold through
)
