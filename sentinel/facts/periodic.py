"""When each task name was last sent and last received: the facts behind periodic_task, with
what the previous run of sentinel knew of them (sentinel.facts.periodic_repo keeps it).

The restart rule ("sentinel just started"): a task the previous run saw, and that was already
overdue by the time that run last wrote its state, is overdue at once (a beat that died an hour
ago is not forgotten); one that was not overdue then gets one full `every + grace` from this
start (what happened while sentinel was down is unknown, so it does not page right after a
start). A task never seen by either run also gets `every + grace` from this start.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.facts.drops import Drops


@dataclass(frozen=True, slots=True)
class Remembered:
    """What the previous run knew of one task name."""

    seen_at: float  # last sent (or received, when it never saw a sent) event
    by_sent: bool  # seen_at is a task-sent (the producer's, e.g. beat's, own clock of runs)
    checked_at: float  # when that run last wrote it: it was watching until then


class PeriodicSeen:
    def __init__(self, *, max_names: int = 10_000, drops: Drops | None = None) -> None:
        self.drops = drops if drops is not None else Drops()
        self.max_names = max_names
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.remembered: dict[str, Remembered] = {}
        self.schedule: dict[str, float] = {}  # task name -> period, from the app's beat_schedule
        # Names a periodic rule evaluates (written back), with their every + grace.
        self.watched: dict[str, float] = {}

    def saw(self, name: str, sent: bool, now: float) -> None:
        """A task-sent (sent) or task-received event of this name. On every such event."""
        seen = self.sent if sent else self.received
        if name not in seen and len(seen) >= self.max_names:
            self.drops.periodic += 1
            return
        seen[name] = now

    def watch(self, name: str, period: float) -> None:
        if name in self.watched or len(self.watched) < self.max_names:
            self.watched[name] = period

    def last_seen(self, name: str) -> tuple[float | None, bool]:
        """(when it was last seen in this run, whether that is a sent event).

        task-sent is the better signal (beat sends it when it schedules, whether or not a
        worker takes the task), so once any run saw a sent event of the name, only sent
        events count; received is the fallback when producers do not send task-sent events.
        """
        remembered = self.remembered.get(name)
        sent = self.sent.get(name)
        if sent is not None or (remembered is not None and remembered.by_sent):
            return sent, True
        return self.received.get(name), False

    def overdue(
        self, name: str, period: float, started_at: float, now: float
    ) -> tuple[float, bool]:
        """(seconds since the task was last seen, or since start; whether it is overdue)."""
        seen, _ = self.last_seen(name)
        if seen is not None:
            age = now - seen
            return age, age > period
        remembered = self.remembered.get(name)
        if remembered is not None:
            age = now - remembered.seen_at
            if remembered.seen_at + period <= remembered.checked_at:
                return age, True  # already overdue while the previous run watched
            return age, now - started_at > period
        age = now - started_at
        return age, age > period

    def rows(self, now: float) -> list[tuple[str, float, bool, float]]:
        """(name, seen_at, by_sent, checked_at) of every watched name seen by either run."""
        out = []
        for name in self.watched:
            seen, by_sent = self.last_seen(name)
            if seen is None:
                remembered = self.remembered.get(name)
                if remembered is None:
                    continue
                seen, by_sent = remembered.seen_at, remembered.by_sent
            out.append((name, seen, by_sent, now))
        return out

    def changes(self, now: float) -> list[tuple[str, float, bool, bool]]:
        """What a write of rows() would tell the next run that the last one did not: each
        watched name's last sighting, and whether it is overdue by now (the restart rule reads
        checked_at only against that deadline)."""
        out = []
        for name, seen, by_sent, _ in self.rows(now):
            out.append((name, seen, by_sent, now > seen + self.watched[name]))
        return out

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self.sent, *self.received, *self.remembered, *self.schedule]))
