from __future__ import annotations

from sentinel.config import BrokerUnreachableRule
from sentinel.model import Sample
from sentinel.store.facts import FactStore

SOURCES = ("events", "inspect", "queues")


def evaluate(rule: BrokerUnreachableRule, store: FactStore, now: float) -> list[Sample]:
    """One cluster-wide sample: seconds since the broker last answered, when it stopped.

    While the broker cannot be reached every other rule holds its state (it cannot tell), so
    this is the alert that says sentinel is blind: a broker outage stops every task too.
    """
    failing = [p for s in SOURCES if (p := store.probes.get(s)) is not None and not p.ok]
    if not failing:
        known = any(store.probes.get(s) is not None for s in SOURCES)
        return [Sample({}, 0.0, 0.0, False if known else None)]
    last_ok = max((p.ok_at for p in failing if p.ok_at is not None), default=None)
    since = min((p.error_at for p in failing if p.error_at is not None), default=now)
    down_for = now - (last_ok if last_ok is not None else since)
    return [Sample({}, max(0.0, down_for), 0.0, True)]
