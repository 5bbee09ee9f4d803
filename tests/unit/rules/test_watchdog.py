from __future__ import annotations

from sentinel.facts.store import FactStore
from sentinel.rules.watchdog import WatchdogRule
from tests.helpers import T0
from tests.unit.rules.kit import run


def test_watchdog_fires_whatever_the_store_knows() -> None:
    rule = WatchdogRule(name="Watchdog", kind="watchdog")
    store = FactStore()
    assert [(s.labels, s.active) for s in run(rule, store, T0)] == [({}, True)]
    store.probe_failed("events", "connection refused", T0)  # the broker down: still firing
    [sample] = run(rule, store, T0 + 1)
    assert sample.active is True and sample.value == 1.0
