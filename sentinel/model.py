"""Plain values that flow between collectors, rules, alert state and notifiers. No I/O here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sentinel.fingerprint import fingerprint_items


class Labels(Mapping[str, str]):
    """An immutable, hashable label set; its fingerprint is Prometheus's (sentinel.fingerprint)."""

    __slots__ = ("_fingerprint", "_items")

    def __init__(self, items: Mapping[str, str] | None = None, **kw: str) -> None:
        merged = dict(items or {}, **kw)
        self._items: tuple[tuple[str, str], ...] = tuple(
            sorted((str(k), str(v)) for k, v in merged.items())
        )
        self._fingerprint: str | None = None

    @classmethod
    def from_sorted(cls, items: tuple[tuple[str, str], ...]) -> Labels:
        """A label set from items already as __init__ leaves them (str pairs, sorted, distinct
        names): for callers that make many label sets sharing most of their items."""
        labels = cls.__new__(cls)
        labels._items = items
        labels._fingerprint = None
        return labels

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._items == other._items
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in self._items) + "}"

    def merge(self, other: Mapping[str, str]) -> Labels:
        return Labels({**dict(self._items), **other})

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_items(self._items)
        return self._fingerprint


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class State(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Sample:
    """One verdict of one rule for one instance (a queue, a task, a worker, or the cluster).

    `active` None means the rule cannot tell (no data, probe failed, below min_count):
    the alert keeps whatever state it had rather than firing or resolving on a guess.
    """

    labels: Mapping[str, str]
    value: float | None
    threshold: float
    active: bool | None
    # Annotations of this instance beyond the rendered summary (stuck_task's task ids): what a
    # template cannot know from labels, value and threshold.
    detail: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    labels: Labels
    annotations: Mapping[str, str]
    state: State
    active_at: float  # condition first seen true
    value: float | None
    threshold: float
    fired_at: float | None = None
    resolved_at: float | None = None
    updated_at: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.labels.fingerprint


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
