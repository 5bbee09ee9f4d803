from __future__ import annotations

from sentinel.config import NoLiveWorkersRule
from sentinel.model import Sample
from sentinel.rules.base import matches
from sentinel.store.facts import FactStore


def evaluate(rule: NoLiveWorkersRule, store: FactStore, now: float) -> list[Sample]:
    """One cluster-wide sample: the number of live workers against min_workers.

    With no evidence at all yet (no heartbeat, no ping answer, no probe run) there is nothing
    to say, so the alert neither fires nor resolves until the first inspect or event arrives.
    """
    live = sum(
        1 for w in store.workers.values() if matches(w.hostname, rule.workers) and w.alive(now)
    )
    inspect = store.probes.get("inspect")
    events = store.probes.get("events")
    informed = (
        store.workers
        or (inspect is not None and inspect.ok)
        or (events is not None and events.ok and store.last_event_at is not None)
    )
    if not informed:
        return [Sample({}, float(live), float(rule.min_workers), None)]
    return [Sample({}, float(live), float(rule.min_workers), live < rule.min_workers)]
