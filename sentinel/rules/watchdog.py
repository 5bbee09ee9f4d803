"""Watchdog: an alert that always fires while sentinel runs (Alertmanager's Watchdog).

Route it to a dead man's switch (a healthchecks.io-style ping URL, a PagerDuty heartbeat, a
webhook) with a short `repeat_interval`: the reminders are the heartbeat, and their absence
is the page that says sentinel itself has stopped, lost its route or cannot send.
"""

from __future__ import annotations

from typing import Literal

from sentinel.facts.store import FactStore
from sentinel.model import Sample
from sentinel.rules.base import RuleBase, RuleKind


class WatchdogRule(RuleBase):
    kind: Literal["watchdog"]

    def describe(self) -> str:
        return "always firing while sentinel runs (route it to a dead man's switch)"


def evaluate(rule: WatchdogRule, store: FactStore, now: float) -> list[Sample]:
    """One cluster-wide sample, always true, of a constant value (an uptime would change the
    alert, and so write it to storage, at every evaluation)."""
    return [Sample({}, 1.0, 0.0, True)]


SUMMARY = "sentinel is running: this alert always fires, so its absence means sentinel stopped"

KIND = RuleKind(
    kind="watchdog",
    evaluate=evaluate,
    schema=WatchdogRule,
    summary=SUMMARY,
    # An unreachable broker stops no part of the pipeline this alert proves alive.
    holds_during_outage=False,
)
