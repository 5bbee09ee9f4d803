"""Inhibition: a firing source alert mutes target alerts that agree on the `equal` labels.

Each side's matchers are all those its rule gives, in either spelling: sentinel's `source` /
`source_re`, Alertmanager's `source_matchers` (and its deprecated `source_match` /
`source_match_re`); the same for the target."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sentinel.config.schema import InhibitRule
from sentinel.model import Alert, State
from sentinel.notify.matchers import Matcher, parse_config_matchers


def _side(rule: InhibitRule, side: str) -> tuple[Matcher, ...]:
    """Every matcher `rule` gives for `side` ("source" or "target"), in either spelling."""
    out: list[Matcher] = []
    for suffix in ("", "_match"):
        out += [Matcher(k, "=", v) for k, v in getattr(rule, side + suffix).items()]
    for suffix in ("_re", "_match_re"):
        out += [Matcher(k, "=~", v) for k, v in getattr(rule, side + suffix).items()]
    out += parse_config_matchers(getattr(rule, side + "_matchers"))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Rule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = [_Rule(_side(r, "source"), _side(r, "target"), r.equal) for r in rules]
        self._sources: list[tuple[_Rule, list[Alert]]] = []

    def update(self, alerts: Iterable[Alert]) -> None:
        """Take the current alerts; only firing ones can inhibit."""
        firing = [a for a in alerts if a.state is State.FIRING]
        self._sources = [
            (rule, [a for a in firing if all(m.matches(a.labels) for m in rule.source)])
            for rule in self.rules
        ]

    def muted_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        out: list[str] = []
        for rule, sources in self._sources:
            if not sources or not all(m.matches(labels) for m in rule.target):
                continue
            # As Alertmanager (excludeTwoSidedMatch): a target that matches the source side
            # too is not inhibited by sources that match the target side, so an alert never
            # inhibits itself and two such alerts never mute each other.
            two_sided = all(m.matches(labels) for m in rule.source)
            for source in sources:
                if two_sided and all(m.matches(source.labels) for m in rule.target):
                    continue
                if all(source.labels.get(k, "") == labels.get(k, "") for k in rule.equal):
                    out.append(source.fingerprint)
                    break
        return out
