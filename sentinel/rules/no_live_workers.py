from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.fields import Globs, WorkerCount
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind, matches


class NoLiveWorkersRule(RuleBase):
    kind: Literal["no_live_workers"]
    workers: Globs = ("*",)
    min_workers: WorkerCount = 1

    def describe(self) -> str:
        return f"fewer than {self.min_workers} live worker(s) matching {list(self.workers)}"


def evaluate(rule: NoLiveWorkersRule, store: FactStore, now: float) -> list[Sample]:
    """One cluster-wide sample: the number of live workers against min_workers.

    Too few live workers is only a verdict when sentinel can see: with no evidence at all yet
    (no heartbeat, no ping answer, no probe run), or with both the event stream and inspect
    failing (the broker is down, so silence proves nothing; BrokerUnreachable covers that),
    the alert neither fires nor resolves.
    """
    live = sum(
        1 for w in store.workers.values() if matches(w.hostname, rule.workers) and w.alive(now)
    )
    inspect = store.probes.get("inspect")
    events = store.probes.get("events")
    inspect_ok = inspect is not None and inspect.ok and inspect.ok_at is not None
    events_ok = events is not None and events.ok
    informed = store.workers or inspect_ok or (events_ok and store.last_event_at is not None)
    # The stream is down and no ping round since then can vouch for anything either.
    pinged_since = (
        inspect is not None
        and inspect.ok_at is not None
        and inspect_ok
        and events is not None
        and inspect.ok_at >= (events.error_at or 0.0)
    )
    blind = events is not None and not events.ok and not pinged_since
    if live >= rule.min_workers:
        verdict: bool | None = False if informed else None
    else:
        verdict = None if (not informed or blind) else True
    return [Sample({}, float(live), float(rule.min_workers), verdict)]


SUMMARY = "{{ value|number }} live Celery worker(s) (need at least {{ threshold|number }})"

KIND = RuleKind(
    kind="no_live_workers",
    evaluate=evaluate,
    schema=NoLiveWorkersRule,
    summary=SUMMARY,
    liveness=True,
)
