"""The database's health on /metrics (registered only when there is one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel.db.health import StorageHealth


class StorageCollector(Collector):
    def __init__(self, health: Callable[[], StorageHealth]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        health = self.health()
        yield GaugeMetricFamily(
            "sentinel_storage_healthy",
            "1 while the database holds the current state; 0 while it is kept in memory only.",
            value=1 if health.healthy else 0,
        )
        yield CounterMetricFamily(
            "sentinel_storage_errors",
            "Database failures (disk full, I/O error, file deleted or replaced).",
            value=health.errors,
        )
