"""Periodic `inspect` snapshots: ping, stats, active, reserved, active_queues.

Ping goes first and tells how many workers answer; the other calls then stop waiting as soon
as that many have replied, so one slow worker costs at most one timeout, not five.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from sentinel.clock import Clock
from sentinel.facts.store import FactStore

log = logging.getLogger("sentinel.inspect")


class InspectCollector:
    source = "inspect"

    def __init__(
        self,
        app: Celery,
        store: FactStore,
        clock: Clock,
        *,
        interval: float,
        timeout: float,
        enable_events: bool,
    ) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.enable_events = enable_events

    def collect(self) -> None:
        try:
            self._collect()
        except Exception as e:  # the broker is down or refused us: a fact, not a zero
            self.store.probe_failed(self.source, f"{type(e).__name__}: {e}", self.clock.now())
            log.warning("inspect failed: %s: %s", type(e).__name__, e)

    def _collect(self) -> None:
        control = self.app.control
        if self.enable_events:
            control.enable_events()
        # A reply proves the worker was alive when the ping went out, not when the round ends:
        # stamping it later would let a worker killed mid-round look alive for another round.
        pinged_at = self.clock.now()
        pings = control.inspect(timeout=self.timeout).ping() or {}
        replies: dict[str, dict[str, Any]] = {}
        if pings:
            inspect = control.inspect(timeout=self.timeout, limit=len(pings))
            replies = {
                "active_queues": inspect.active_queues() or {},
                "stats": inspect.stats() or {},
                "active": inspect.active() or {},
                "reserved": inspect.reserved() or {},
            }
        now = self.clock.now()
        active_queues = {
            host: [q["name"] for q in queues if isinstance(q, dict) and "name" in q]
            for host, queues in replies.get("active_queues", {}).items()
            if isinstance(queues, list)
        }
        stats = {
            host: _summary(s, replies.get("reserved", {}).get(host))
            for host, s in replies.get("stats", {}).items()
            if isinstance(s, dict)
        }
        running = {
            host: [t for t in tasks if isinstance(t, dict)]
            for host, tasks in replies.get("active", {}).items()
            if isinstance(tasks, list)
        }
        active = {host: len(tasks) for host, tasks in running.items()}
        # A ping answer is evidence of life until the snapshot after next is due: as with
        # Celery's heartbeats (alive for 2 x freq), one late or skipped round is not a death,
        # or a worker alive by ping alone flickers dead whenever a round runs late.
        ttl = 2 * self.interval + self.timeout
        self.store.set_inspect(
            set(pings), pinged_at, ttl, active_queues, stats, active, now, _slim(running)
        )
        # Stamped with the round's start: a round the broker died during can come back with
        # no replies and no error, and must not pass for evidence gathered after the outage.
        self.store.probe_ok(self.source, pinged_at)
        log.debug("inspect round: %d worker(s) answered in %.2fs", len(pings), now - pinged_at)


def _slim(running: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """What the running tasks need of each `inspect active` entry (not its args, kwargs)."""
    return {
        host: [{k: t.get(k) for k in ("id", "name", "time_start")} for t in tasks]
        for host, tasks in running.items()
    }


def _summary(stats: dict[str, Any], reserved: Any) -> dict[str, Any]:
    pool = stats.get("pool")
    if not isinstance(pool, dict):
        pool = {}
    return {
        "pid": stats.get("pid"),
        "concurrency": pool.get("max-concurrency"),
        "total": sum((stats.get("total") or {}).values())
        if isinstance(stats.get("total"), dict)
        else None,
        "reserved": len(reserved) if isinstance(reserved, list) else None,
        "uptime": stats.get("uptime"),
    }
