"""Delivery on /metrics: notification attempts by channel and outcome, and the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("sentinel.metrics")

OUTCOMES = ("success", "retry", "failed", "dropped")


class Outbox(Protocol):
    def count(self) -> int: ...


class Storage(Protocol):
    @property
    def failures(self) -> tuple[type[Exception], ...]: ...


class Delivery(Protocol):
    @property
    def db(self) -> Storage: ...

    @property
    def outcomes(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def outbox(self) -> Outbox: ...


class DeliveryCollector(Collector):
    def __init__(self, sender: Delivery | None, channels: Callable[[], Iterable[str]]) -> None:
        self.sender = sender  # None: nothing is sent (no storage)
        self.channels = channels  # the configured channels' names (swapped on reload)

    def describe(self) -> Iterator[Metric]:
        return self._families({}, None)

    def collect(self) -> Iterator[Metric]:
        # Every configured channel x outcome from the start, so rate() sees the first failure.
        outcomes = dict.fromkeys(((c, o) for c in self.channels() for o in OUTCOMES), 0)
        pending: int | None = None
        if self.sender is not None:
            outcomes.update(dict(self.sender.outcomes))
            try:
                pending = self.sender.outbox.count()
            except self.sender.db.failures as e:  # storage closed or away: omit, don't fail
                log.debug("outbox count unavailable: %s", e)
        return self._families(outcomes, pending)

    def _families(
        self, outcomes: Mapping[tuple[str, str], int], pending: int | None
    ) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "sentinel_notifications",
            "Notification delivery attempts, by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), n in sorted(outcomes.items()):
            family.add_metric([channel, outcome], n)
        yield family
        outbox = GaugeMetricFamily(
            "sentinel_outbox_pending", "Notifications decided but not yet delivered.", labels=[]
        )
        if pending is not None:
            outbox.add_metric([], pending)
        yield outbox
