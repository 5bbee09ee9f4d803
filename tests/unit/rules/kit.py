"""What the new kinds' unit tests share: evaluating through the registry, and the Celery events
they feed a store with."""

from __future__ import annotations

from typing import Any

from sentinel.facts.store import FactStore
from sentinel.model import Sample
from sentinel.rules import evaluator
from tests.helpers import T0


def run(rule: Any, store: FactStore, now: float) -> list[Sample]:
    """Evaluate through the registry, as the alert book does."""
    with store.lock:
        return evaluator(rule.kind)(rule, store, now)


def by_label(samples: list[Sample], key: str) -> dict[str, Sample]:
    return {s.labels[key]: s for s in samples}


def heartbeat(hostname: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "worker-heartbeat",
        "hostname": hostname,
        "freq": 2.0,
        "timestamp": T0,
        **fields,
    }


def task(kind: str, uuid: str, now: float, **fields: Any) -> dict[str, Any]:
    return {"type": f"task-{kind}", "uuid": uuid, "timestamp": now, **fields}
