"""The alert book on /metrics: current alerts by state, the last evaluation, rule errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel.model import Alert, State


class Book(Protocol):
    @property
    def alerts(self) -> Mapping[str, Alert]: ...

    @property
    def last_duration(self) -> float: ...

    @property
    def rule_errors(self) -> int: ...

    @property
    def rule_errors_by_rule(self) -> Mapping[str, int]: ...


class AlertsCollector(Collector):
    def __init__(self, book: Book, rule_names: Callable[[], Iterable[str]]) -> None:
        self.book = book
        self.rule_names = rule_names  # the loaded rules' names (swapped on reload)

    def describe(self) -> Iterator[Metric]:
        return self._families([], 0.0, 0, {})

    def collect(self) -> Iterator[Metric]:
        book = self.book
        states = [a.state for a in list(book.alerts.values())]
        # Every configured rule from the start, so rate() sees the first failure.
        by_rule = {**dict.fromkeys(self.rule_names(), 0), **dict(book.rule_errors_by_rule)}
        return self._families(states, book.last_duration, book.rule_errors, by_rule)

    def _families(
        self, states: list[State], duration: float, errors: int, by_rule: Mapping[str, int]
    ) -> Iterator[Metric]:
        alerts = GaugeMetricFamily("sentinel_alerts", "Current alerts, by state.", labels=["state"])
        for state in (State.PENDING, State.FIRING):
            alerts.add_metric([state.value], states.count(state))
        yield alerts
        yield GaugeMetricFamily(
            "sentinel_rule_evaluation_seconds",
            "Duration of the last evaluation of all rules.",
            value=duration,
        )
        yield CounterMetricFamily(
            "sentinel_rule_errors", "Rule evaluations that raised an error.", value=errors
        )
        family = CounterMetricFamily(
            "sentinel_rule_errors_by_rule",
            "Rule evaluations that raised an error, by rule (the other rules went on).",
            labels=["rule"],
        )
        for rule, n in sorted(by_rule.items()):
            family.add_metric([rule], n)
        yield family
