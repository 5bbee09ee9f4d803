"""Inhibition: a firing source mutes targets that agree on the `equal` labels."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel.config.schema import InhibitRule
from sentinel.model import Alert, Labels, State
from sentinel.notify.inhibit import Inhibitor
from tests.helpers import T0


def alert(state: State = State.FIRING, **labels: str) -> Alert:
    return Alert(
        rule=labels.get("alertname", "X"),
        labels=Labels(labels),
        annotations={},
        state=state,
        active_at=T0,
        value=1.0,
        threshold=0.0,
        fired_at=None if state is State.PENDING else T0,
        resolved_at=T0 + 1 if state is State.RESOLVED else None,
    )


def inhibitor(*rules: dict[str, Any]) -> Inhibitor:
    return Inhibitor([InhibitRule.model_validate(r) for r in rules])


WORKERS_DOWN = {
    "source": {"alertname": "NoLiveWorkers"},
    "target": {"alertname": "QueueBacklog"},
    "equal": ["env"],
}
SOURCE = alert(alertname="NoLiveWorkers", severity="critical", env="prod")


# (id, rules, current alerts, target labels, muted by the source?)
CASES = [
    ("firing source mutes a target with equal labels", [WORKERS_DOWN], [SOURCE],
     {"alertname": "QueueBacklog", "env": "prod", "queue": "celery"}, True),
    ("not when an equal label differs", [WORKERS_DOWN], [SOURCE],
     {"alertname": "QueueBacklog", "env": "staging", "queue": "celery"}, False),
    ("not when the equal label is missing on one side only", [WORKERS_DOWN], [SOURCE],
     {"alertname": "QueueBacklog", "queue": "celery"}, False),
    ("an equal label missing on both sides counts as equal", [WORKERS_DOWN],
     [alert(alertname="NoLiveWorkers")], {"alertname": "QueueBacklog", "queue": "celery"}, True),
    ("not a target", [WORKERS_DOWN], [SOURCE],
     {"alertname": "IdleWorker", "env": "prod"}, False),
    ("pending source does not inhibit", [WORKERS_DOWN],
     [alert(State.PENDING, alertname="NoLiveWorkers", env="prod")],
     {"alertname": "QueueBacklog", "env": "prod"}, False),
    ("resolved source does not inhibit", [WORKERS_DOWN],
     [alert(State.RESOLVED, alertname="NoLiveWorkers", env="prod")],
     {"alertname": "QueueBacklog", "env": "prod"}, False),
    ("no source alert at all", [WORKERS_DOWN], [], {"alertname": "QueueBacklog", "env": "prod"},
     False),
    ("no equal labels: any firing source inhibits",
     [{"source": {"alertname": "NoLiveWorkers"}, "target": {"alertname": "QueueBacklog"}}],
     [SOURCE], {"alertname": "QueueBacklog", "env": "staging"}, True),
    ("several equal labels must all agree",
     [{**WORKERS_DOWN, "equal": ["env", "cluster"]}],
     [alert(alertname="NoLiveWorkers", env="prod", cluster="a")],
     {"alertname": "QueueBacklog", "env": "prod", "cluster": "b"}, False),
    ("regex source and target",
     [{"source_re": {"alertname": "NoLive.*"}, "target_re": {"queue": "billing.*"}}],
     [SOURCE], {"alertname": "QueueBacklog", "queue": "billing.charge"}, True),
    ("regex target does not match",
     [{"source_re": {"alertname": "NoLive.*"}, "target_re": {"queue": "billing.*"}}],
     [SOURCE], {"alertname": "QueueBacklog", "queue": "celery"}, False),
    ("regex target is anchored",
     [{"source_re": {"alertname": "NoLive.*"}, "target_re": {"queue": "billing.*"}}],
     [SOURCE], {"alertname": "QueueBacklog", "queue": "xbilling"}, False),
    ("regex source is anchored",
     [{"source_re": {"alertname": "Live.*"}, "target_re": {"queue": "billing.*"}}],
     [SOURCE], {"alertname": "QueueBacklog", "queue": "billing"}, False),
    ("exact and regex together",
     [{"source": {"severity": "critical"}, "source_re": {"alertname": "No.*"},
       "target": {"alertname": "QueueBacklog"}, "target_re": {"env": "pr.d"}}],
     [SOURCE], {"alertname": "QueueBacklog", "env": "prod"}, True),
    ("a second rule can inhibit when the first does not",
     [WORKERS_DOWN, {"source": {"severity": "critical"}, "target": {"severity": "warning"}}],
     [SOURCE], {"alertname": "QueueBacklog", "env": "staging", "severity": "warning"}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "alerts", "target", "muted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_muted_by(
    rules: list[dict[str, Any]], alerts: list[Alert], target: dict[str, str], muted: bool
) -> None:
    inh = inhibitor(*rules)
    target_alert = alert(**target)
    inh.update([*alerts, target_alert])
    expected = [a.fingerprint for a in alerts if a.state is State.FIRING][:1] if muted else []
    assert inh.muted_by(target_alert.labels, T0) == expected


SELF = {
    "source": {"severity": "critical"},
    "target_re": {"severity": "critical|warning"},
    "equal": ["queue"],
}


def test_an_alert_does_not_inhibit_itself() -> None:
    inh = inhibitor(SELF)
    critical = alert(alertname="QueueBacklog", severity="critical", queue="q")
    inh.update([critical])
    assert inh.muted_by(critical.labels, T0) == []
    assert inh.muted_by(dict(critical.labels), T0) == []  # also for a plain mapping


def test_a_source_still_inhibits_other_targets() -> None:
    inh = inhibitor(SELF)
    critical = alert(alertname="QueueBacklog", severity="critical", queue="q")
    warning = alert(alertname="TaskFailureRate", severity="warning", queue="q")
    inh.update([critical, warning])
    assert inh.muted_by(warning.labels, T0) == [critical.fingerprint]
    assert inh.muted_by(critical.labels, T0) == []


def test_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    """Alertmanager's excludeTwoSidedMatch: otherwise two such alerts would mute each other
    and neither would ever be sent."""
    inh = inhibitor(SELF)
    first = alert(alertname="QueueBacklog", severity="critical", queue="q")
    second = alert(alertname="NoLiveWorkers", severity="critical", queue="q")
    inh.update([first, second])
    assert inh.muted_by(first.labels, T0) == []
    assert inh.muted_by(second.labels, T0) == []


def test_update_replaces_the_sources() -> None:
    inh = inhibitor(WORKERS_DOWN)
    target = alert(alertname="QueueBacklog", env="prod")
    inh.update([SOURCE, target])
    assert inh.muted_by(target.labels, T0) == [SOURCE.fingerprint]
    resolved = alert(State.RESOLVED, alertname="NoLiveWorkers", severity="critical", env="prod")
    inh.update([resolved, target])
    assert inh.muted_by(target.labels, T0) == []
    inh.update([target])
    assert inh.muted_by(target.labels, T0) == []


def test_no_rules_no_inhibition() -> None:
    inh = Inhibitor([])
    target = alert(alertname="QueueBacklog", env="prod")
    inh.update([SOURCE, target])
    assert inh.muted_by(target.labels, T0) == []
