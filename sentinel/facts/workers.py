"""Facts about one worker, and Celery's rule for when it is alive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_FREQ = 2.0  # Celery's default heartbeat interval
RECONNECT_GRACE = 30.0  # kombu's ensure_connection interval_max: a worker's longest retry wait


@dataclass(slots=True)
class WorkerState:
    hostname: str
    first_seen: float
    heartbeat_at: float | None = None
    freq: float = DEFAULT_FREQ
    regular: bool = False  # a periodic heartbeat (with active/processed) has been seen
    offline_at: float | None = None
    ping_at: float | None = None
    ping_ttl: float = 0.0
    grace_until: float = 0.0  # after an event-stream gap: time to send a heartbeat we can see
    active: int = 0
    processed: int = 0
    last_activity: float = 0.0
    last_task_started: float | None = None
    sw_ident: str = ""
    sw_ver: str = ""
    queues: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)

    def alive(self, now: float) -> bool:
        """Celery's rule: alive while now < last heartbeat + 2 x freq.

        A ping answer counts too, but only when it came after the heartbeats stopped (events
        broken, worker fine); an older ping must not keep a SIGKILLed worker alive.
        """
        expires = -1.0
        if self.heartbeat_at is not None:
            expires = self.heartbeat_at + 2.0 * self.freq
        if self.ping_at is not None and self.ping_at > expires:
            expires = self.ping_at + self.ping_ttl
        if self.grace_until > expires:
            expires = self.grace_until
        if self.offline_at is not None and self.offline_at >= max(
            self.heartbeat_at or 0.0, self.ping_at or 0.0
        ):
            return False
        return now < expires

    def last_seen(self) -> float:
        return max(self.heartbeat_at or 0.0, self.ping_at or 0.0, self.first_seen)

    def grant_reconnect_grace(self, lost_at: float, now: float) -> None:
        """The event stream is back after a gap in which no heartbeat could reach us (a broker
        restart stops the workers' heartbeats too). A worker alive when it was lost has until
        its own reconnect could take (kombu retries a lost broker every <= 30 s) plus
        2 x freq to show up, before its silence counts as death."""
        if self.alive(lost_at):
            self.grace_until = max(self.grace_until, now + RECONNECT_GRACE + 2.0 * self.freq)
