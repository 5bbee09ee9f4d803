"""Rule kinds: each module turns facts into one Sample per instance (queue, task, worker) and
declares everything else about its kind as `KIND` (schema, default summary, unit, flags).

RULES is the only list of kinds: a new kind is `rules/<kind>.py` plus one line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from sentinel.rules import (
    broker_unreachable,
    events_missing,
    failure_rate,
    idle_worker,
    lost_task,
    no_live_workers,
    periodic_task,
    queue_backlog,
    queue_stalled,
    queue_unconsumed,
    storage_failing,
    stuck_task,
    task_latency,
    task_rate,
    watchdog,
    worker_flapping,
)
from sentinel.rules.base import GENERIC_SUMMARY, Evaluate, EvaluateSeries, RuleBase, RuleKind

RULES: dict[str, RuleKind] = {
    k.kind: k
    for k in (
        no_live_workers.KIND,
        queue_backlog.KIND,
        failure_rate.KIND,
        idle_worker.KIND,
        task_latency.KIND,
        broker_unreachable.KIND,
        stuck_task.KIND,
        lost_task.KIND,
        periodic_task.KIND,
        queue_stalled.KIND,
        queue_unconsumed.KIND,
        worker_flapping.KIND,
        task_rate.KIND,
        events_missing.KIND,
        watchdog.KIND,
        storage_failing.KIND,  # built in, never configured: added by the app with storage
    )
}


def schemas(registry: Mapping[str, RuleKind] = RULES) -> tuple[type[RuleBase], ...]:
    """The configurable kinds' schemas, in registry order: the members of the config's union."""
    return tuple(k.schema for k in registry.values() if k.schema is not None)


RULE_SCHEMAS = schemas()


def evaluator(kind: str, registry: Mapping[str, RuleKind] = RULES) -> Evaluate:
    return registry[kind].evaluate


def per_series_evaluator(
    kind: str, registry: Mapping[str, RuleKind] = RULES
) -> EvaluateSeries | None:
    """The kind's per-series evaluation, if it has one (RuleKind.per_series)."""
    k = registry.get(kind)
    return None if k is None else k.per_series


def holds_during_outage(kind: str, registry: Mapping[str, RuleKind] = RULES) -> bool:
    k = registry.get(kind)
    return True if k is None else k.holds_during_outage


def default_summary(kind: str, registry: Mapping[str, RuleKind] = RULES) -> str:
    k = registry.get(kind)
    return GENERIC_SUMMARY if k is None else k.summary


def unit(kind: str | None, registry: Mapping[str, RuleKind] = RULES) -> str:
    k = registry.get(kind) if kind is not None else None
    return "count" if k is None else k.unit


def liveness(kind: str, registry: Mapping[str, RuleKind] = RULES) -> bool:
    k = registry.get(kind)
    return k is not None and k.liveness


def reads_rings(kind: str, registry: Mapping[str, RuleKind] = RULES) -> bool:
    k = registry.get(kind)
    return k is None or k.reads_rings
