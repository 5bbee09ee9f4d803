"""The HA role on /metrics: one scrape-time collector over the lease (prometheus_client's
Collector protocol), registered by the composition root when `ha.enabled`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sentinel.ha.role import Role


class HaCollector:
    def __init__(self, role: Callable[[], Role]) -> None:
        self.role = role

    def collect(self) -> Iterator[Metric]:
        r = self.role()
        yield GaugeMetricFamily(
            "sentinel_ha_leader",
            "1 while this replica holds the lease (and so sends), else 0.",
            value=1.0 if r.leader else 0.0,
        )
        yield GaugeMetricFamily(
            "sentinel_ha_epoch",
            "The lease's epoch as this replica last saw it (grows at every takeover).",
            value=float(r.epoch if r.epoch is not None else 0),
        )
        yield CounterMetricFamily(
            "sentinel_ha_lease_renew_failures",
            "Lease renewals (or attempts to take it) the database did not answer.",
            value=r.renew_failures,
        )
        yield CounterMetricFamily(
            "sentinel_ha_takeovers",
            "Times this replica became the leader.",
            value=r.takeovers,
        )
