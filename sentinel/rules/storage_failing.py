"""StorageFailing: the built-in alert that says sentinel's state lives in memory only.

Not configurable as a rule kind: sentinel adds it whenever it has storage, so a full disk or a
deleted database file reaches a human through the route like any alert (match it by
`alertname: StorageFailing`). It fires while the database cannot be written and resolves once
the state has been written back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sentinel.db.health import StorageHealth
from sentinel.facts.store import FactStore
from sentinel.model import Sample, Severity
from sentinel.rules.base import RuleKind

NAME = "StorageFailing"
SUMMARY = (
    "sentinel cannot write its state to storage (for {{ value|duration }}): alerts and pages"
    " continue from memory, but a restart now would forget them"
)


@dataclass(frozen=True, eq=False)
class StorageFailingRule:
    """Shaped like a configured rule, as far as the alert book reads one."""

    health: Callable[[], StorageHealth]
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str = NAME
    kind: str = "storage_failing"
    severity: Severity = Severity.ERROR
    for_: float = 0.0
    summary: str = SUMMARY
    description: str | None = None  # the reason is on /readyz and in the ERROR log


def evaluate(rule: StorageFailingRule, store: FactStore, now: float) -> list[Sample]:
    """One sample: seconds since storage started failing, or 0 and inactive while it works."""
    health = rule.health()
    if health.healthy:
        return [Sample({}, 0.0, 0.0, False)]
    since = health.failing_since if health.failing_since is not None else now
    return [Sample({}, max(0.0, now - since), 0.0, True)]


KIND = RuleKind(kind="storage_failing", evaluate=evaluate, schema=None)
