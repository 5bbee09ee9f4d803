"""The record of one demo run: what the scenario did, what fired and resolved, what was sent.

Times are seconds since the demo started. The same record feeds the console's final summary
and `summary.json`, which scripts (and the integration test) read instead of scraping output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sentinel.demo.watch import Sent, Transition, instance


def clock(t: float) -> str:
    t = max(0, int(t))
    return f"{t // 60:02d}:{t % 60:02d}"


@dataclass(slots=True)
class AlertRecord:
    name: str
    labels: dict[str, str]
    kind: str | None
    fired: list[float] = field(default_factory=list)
    resolved: list[float] = field(default_factory=list)
    value: float | None = None
    threshold: float | None = None

    @property
    def firing(self) -> bool:
        return len(self.fired) > len(self.resolved)


class Story:
    def __init__(self, started: float, kinds: dict[str, str]) -> None:
        self.started = started
        self.kinds = kinds  # alertname -> rule kind
        self.scenario: list[tuple[float, str, str]] = []
        self.alerts: dict[str, AlertRecord] = {}
        self.sent: Counter[tuple[str, str]] = Counter()
        self.webhook: list[tuple[float, dict[str, Any]]] = []
        self.killed_on_stop: list[str] = []

    def t(self, at: float) -> float:
        return at - self.started

    def action(self, at: float, action: str, detail: str) -> None:
        self.scenario.append((self.t(at), action, detail))

    def transition(self, tr: Transition) -> None:
        name = tr.labels.get("alertname", "?")
        record = self.alerts.get(tr.fingerprint)
        if record is None:
            record = self.alerts[tr.fingerprint] = AlertRecord(
                name, tr.labels, self.kinds.get(name)
            )
        record.value, record.threshold = tr.value, tr.threshold
        if tr.after == "firing":
            record.fired.append(self.t(tr.at))
        elif tr.after == "resolved" and record.firing:
            record.resolved.append(self.t(tr.at))

    def delivered(self, sent: Sent) -> None:
        self.sent[(sent.channel, sent.status)] += 1

    def received(self, at: float, payload: dict[str, Any]) -> None:
        self.webhook.append((self.t(at), payload))

    # -- the end --------------------------------------------------------------------------

    def fired(self) -> list[AlertRecord]:
        return sorted((r for r in self.alerts.values() if r.fired), key=lambda r: r.fired[0])

    def as_dict(self, duration: float, files: dict[str, str]) -> dict[str, Any]:
        return {
            "duration": round(duration, 1),
            "files": files,
            "rules": self.kinds,
            "scenario": [
                {"at": round(t, 1), "action": a, "detail": d} for t, a, d in self.scenario
            ],
            "alerts": [
                {
                    "alertname": r.name,
                    "kind": r.kind,
                    "labels": r.labels,
                    "fired": [round(t, 1) for t in r.fired],
                    "resolved": [round(t, 1) for t in r.resolved],
                    "firing_at_exit": r.firing,
                }
                for r in self.fired()
            ],
            "sent": {
                channel: {status: n for (c, status), n in sorted(self.sent.items()) if c == channel}
                for channel in sorted({c for c, _ in self.sent})
            },
            "webhook_payloads": len(self.webhook),
            "killed_on_stop": self.killed_on_stop,
        }

    def summary_lines(self, duration: float, files: dict[str, str]) -> list[str]:
        lines = [f"Summary after {clock(duration)} (times since start)"]
        fired = self.fired()
        episodes = sorted(
            (
                (fired_at, r, r.resolved[i] if i < len(r.resolved) else None)
                for r in fired
                for i, fired_at in enumerate(r.fired)
            ),
            key=lambda episode: episode[0],
        )
        if episodes:
            width = max(len(instance(r.labels)) for r in fired)
            kind = max(len(r.kind or "?") for r in fired)
            lines.append(f"  {'ALERT':<{width}}  {'KIND':<{kind}}  FIRED  RESOLVED")
            for fired_at, r, resolved_at in episodes:
                resolved = clock(resolved_at) if resolved_at is not None else "still firing"
                lines.append(
                    f"  {instance(r.labels):<{width}}  {r.kind or '?':<{kind}}  "
                    f"{clock(fired_at)}  {resolved}"
                )
        else:
            lines.append("  nothing fired")
        kinds_fired = {r.kind for r in fired}
        missing = sorted(set(self.kinds.values()) - kinds_fired)
        lines.append(
            f"  rule kinds fired: {len(kinds_fired & set(self.kinds.values()))}"
            f" of {len(set(self.kinds.values()))}"
            + (f" (not: {', '.join(missing)})" if missing else "")
        )
        channels = sorted({c for c, _ in self.sent})
        sent = "; ".join(
            f"{c} {sum(n for (cc, _), n in self.sent.items() if cc == c)} "
            f"({self.sent[(c, 'firing')]} firing, {self.sent[(c, 'resolved')]} resolved)"
            for c in channels
        )
        lines.append(f"  sent: {sent or 'nothing'}")
        lines.append(
            f"  webhook receiver got {len(self.webhook)} Alertmanager v4 payload(s)"
            f" -> {files['webhook']}"
        )
        lines.extend(f"  scenario at {clock(t)}: {d}" for t, _, d in self.scenario)
        if self.killed_on_stop:
            lines.append(f"  needed SIGKILL to stop: {', '.join(self.killed_on_stop)}")
        lines.append(
            f"  files: config {files['config']}, logs {files['logs']}, summary {files['summary']}"
        )
        return lines
