"""What every storage engine reports about itself: read by /readyz, /metrics and the built-in
StorageFailing alert, so none of them knows which engine is behind it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StorageHealth:
    healthy: bool
    reason: str | None  # why the state is held in memory only (None while healthy)
    failing_since: float | None
    errors: int  # storage failures since start
    path: str
