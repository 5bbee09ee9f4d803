"""Replay: a recording through the real facts, rules, alert book and notify pipeline.

The daemon's own composition root (app.Sentinel) is built with a simulated clock, a broker
that is never contacted (memory://) and a throwaway SQLite file; every channel is replaced by
a recorder. The scheduler is replaced by a loop over simulated seconds that runs what the
daemon's scheduler runs, when it would: the evaluation every `evaluation.interval` from the
start, and every second the group timers, the liveness and pending watches and the outbox.
Recorded writes to the fact store are made again at their own times in between, so the
rules see the facts the live daemon saw. Nothing is sent and nothing touches the real state:
the silences of the real state file are copied in (read-only) by the caller, so a replay
mutes what the live daemon muted at the time.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.clock import FakeClock
from sentinel.config.schema import Config, StorageConfig
from sentinel.model import State
from sentinel.notify.silence import Silence
from sentinel.record import format as fmt
from sentinel.record.recorder import apply

STEP = 1.0  # the daemon's dispatch / liveness / pending jobs run every second


@dataclass(frozen=True, slots=True)
class Change:
    """One alert transition."""

    at: float
    alertname: str
    labels: Mapping[str, str]
    before: str
    after: str
    value: float | None
    threshold: float | None
    kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "alertname": self.alertname,
            "labels": dict(self.labels),
            "from": self.before,
            "to": self.after,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True)
class PageAlert:
    alertname: str
    labels: Mapping[str, str]
    status: str  # firing | resolved
    value: float | None
    threshold: float | None


@dataclass(frozen=True, slots=True)
class Page:
    """One notification one channel would have received, grouped as it would have been sent."""

    at: float
    channel: str
    status: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[PageAlert, ...]

    @property
    def alertnames(self) -> tuple[str, ...]:
        return tuple(sorted({a.alertname for a in self.alerts}))

    def identity(self) -> tuple[Any, ...]:
        """What makes two pages the same page (in --diff): where, what, about which alerts."""
        return (
            self.channel,
            self.status,
            tuple(sorted(self.group_labels.items())),
            tuple(sorted((tuple(sorted(a.labels.items())), a.status) for a in self.alerts)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "channel": self.channel,
            "status": self.status,
            "group_key": self.group_key,
            "group_labels": dict(self.group_labels),
            "alerts": [
                {
                    "alertname": a.alertname,
                    "labels": dict(a.labels),
                    "status": a.status,
                    "value": a.value,
                    "threshold": a.threshold,
                }
                for a in self.alerts
            ],
        }


@dataclass
class Result:
    start: float
    end: float
    records: int = 0
    changes: list[Change] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    error: str | None = None  # the recording went bad here; what came before was replayed
    evaluations: int = 0


class PageRecorder:
    """A channel that only writes down what it was given."""

    def __init__(self, name: str, clock: FakeClock, pages: list[Page]) -> None:
        self.name = name
        self.clock = clock
        self.pages = pages

    def send(self, notification: Any) -> Mapping[str, str]:
        alerts = tuple(
            PageAlert(
                a.labels.get("alertname", a.rule),
                dict(a.labels),
                "resolved" if a.state is State.RESOLVED else "firing",
                a.value,
                a.threshold,
            )
            for a in notification.alerts
        )
        self.pages.append(
            Page(
                self.clock.now(),
                notification.channel,
                notification.status,
                notification.group_key,
                dict(notification.group_labels),
                alerts,
            )
        )
        return {}


def offline(config: Config, db_path: str) -> Config:
    """The same config with a broker that is never contacted, storage in db_path and no
    recording of its own."""
    celery = config.celery.model_copy(update={"broker_url": "memory://", "queues": ()})
    return config.model_copy(
        update={"celery": celery, "storage": StorageConfig(path=db_path), "record": None}
    )


class Replay:
    """The simulated daemon. feed() records in order, then finish()."""

    def __init__(
        self,
        config: Config,
        start: float,
        *,
        workdir: str,
        evaluate_from: float | None = None,
        on_step: Callable[[Replay, float], None] | None = None,
        silences: Iterable[Silence] = (),
    ) -> None:
        from sentinel.app import Sentinel

        self.config = config
        self.clock = FakeClock(start)
        self.result = Result(start=start, end=start)
        self.sentinel = Sentinel(offline(config, str(Path(workdir) / "replay.db")), self.clock)
        for silence in silences:  # into the throwaway database, never the real one
            self.sentinel.silencer.put(silence)
        assert self.sentinel.sender is not None
        # Every configured channel, the real delivery path (outbox, nflog, memo) up to send().
        self.sentinel.sender.notifiers = {
            name: PageRecorder(name, self.clock, self.result.pages) for name in config.channels
        }
        self.sentinel.on_transitions.append(self._changes)
        self.kinds: dict[str, str] = {r.name: getattr(r, "kind", "") for r in config.rules}
        self.on_step = on_step
        # Records before this are facts only: no evaluation (the warm-up before --from).
        self.evaluate_from = start if evaluate_from is None else evaluate_from
        self.next_step = self.evaluate_from + STEP
        self.next_eval = self.evaluate_from + config.evaluation.interval

    def _changes(self, transitions: Iterable[Any]) -> None:
        now = self.clock.now()
        for t in transitions:
            alert = t.alert
            name = t.labels.get("alertname", "")
            self.result.changes.append(
                Change(
                    now,
                    name,
                    dict(t.labels),
                    t.before.value if t.before is not None else "inactive",
                    alert.state.value if alert is not None else "inactive",
                    alert.value if alert is not None else None,
                    alert.threshold if alert is not None else None,
                    self.kinds.get(alert.rule if alert is not None else name),
                )
            )

    def step(self, now: float) -> None:
        """One simulated second: what the daemon's scheduler runs at `now`."""
        s = self.sentinel
        self.clock.set(now)
        if now >= self.next_eval:
            s.evaluate()
            self.result.evaluations += 1
            while self.next_eval <= now:
                self.next_eval += self.config.evaluation.interval
        s.watch_liveness()
        s.watch_pending()
        s.dispatch()
        assert s.sender is not None
        s.sender.drain()
        self.result.end = now
        if self.on_step is not None:
            self.on_step(self, now)

    def advance(self, until: float) -> None:
        while self.next_step <= until:
            self.step(self.next_step)
            self.next_step += STEP

    def feed(self, record: fmt.Record) -> None:
        if record.t >= self.evaluate_from:
            self.advance(record.t)
        if record.t > self.clock.now():
            self.clock.set(record.t)
        apply(self.sentinel.store, record)
        self.result.records += 1

    def close(self) -> None:
        if self.sentinel.db is not None:
            self.sentinel.db.close()


def run(
    config: Config,
    records: Iterable[fmt.Record],
    *,
    start: float,
    until: float | None = None,
    evaluate_from: float | None = None,
    on_step: Callable[[Replay, float], None] | None = None,
    silences: Iterable[Silence] = (),
) -> Result:
    """Replay records (in order) from `start`; stop at `until` (default: the last record).

    A RecordingError raised by `records` ends the replay there, with what came before
    replayed and the error in Result.error.
    """
    quiet = _Quiet()
    with tempfile.TemporaryDirectory(prefix="sentinel-replay-") as workdir, quiet:
        engine = Replay(
            config,
            start,
            workdir=workdir,
            evaluate_from=evaluate_from,
            on_step=on_step,
            silences=silences,
        )
        try:
            last = start
            try:
                for record in records:
                    if until is not None and record.t > until:
                        break
                    engine.feed(record)
                    last = max(last, record.t)
            except fmt.RecordingError as e:
                engine.result.error = str(e)
            engine.advance(until if until is not None else last)
        finally:
            engine.close()
        return engine.result


def read(paths: Iterable[str | Path]) -> tuple[dict[str, Any], Iterable[fmt.Record]]:
    """The first header and every record of one or more recordings (files or segment
    folders), in order. Records are read lazily: a bad one raises while iterating."""
    files = [f for p in paths for f in fmt.segments(p)]
    if not files:
        raise fmt.RecordingError("no recording files found")
    readers = [fmt.Reader(f) for f in files]

    def records() -> Iterable[fmt.Record]:
        for reader in readers:
            yield from reader

    return readers[0].header, records()


class _Quiet:
    """The daemon logs each transition and send; in a replay the timeline says it all."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("sentinel")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)
