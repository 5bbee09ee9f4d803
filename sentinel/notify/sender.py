"""Drains the outbox: one thread per channel, so a slow or broken channel delays only itself.

This is the one place that retries. Retryable errors back off exponentially with jitter
(honouring Retry-After) until the send succeeds or a newer decision cancels it; permanent
errors are logged loudly, counted and dropped (the next group flush decides afresh).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sentinel.backoff import Backoff
from sentinel.clock import Clock
from sentinel.model import State
from sentinel.notifiers.base import Notification, Notifier, Permanent, Retryable, build
from sentinel.storage.nflog import NotificationLog
from sentinel.storage.outbox import Outbox, OutboxRow
from sentinel.storage.sqlite import Database

log = logging.getLogger("sentinel.notify")

RETRY_BASE = 1.0
RETRY_CAP = 300.0


def retry_delay(attempts: int, retry_after: float | None, backoff: Backoff) -> float:
    backoff.attempt = attempts
    return max(retry_after or 0.0, backoff.next())


class Sender:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Any],
        clock: Clock,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.nflog = NotificationLog(db)
        self.clock = clock
        self.channels = dict(channels)
        self.notifiers: dict[str, Notifier] = dict(notifiers or {})
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._wake: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def _retry(
        self, row: OutboxRow, detail: str, retry_after: float | None, labels: dict[str, str]
    ) -> int:
        delay = retry_delay(row.attempts, retry_after, Backoff(RETRY_BASE, RETRY_CAP))
        self.outbox.retry_later(row, detail, self.clock.now() + delay)
        self._count(row.channel, "retry")
        log.warning(
            "notification to %s for %s failed (attempt %d), retrying in %.1fs: %s",
            row.channel,
            row.group_key,
            row.attempts + 1,
            delay,
            detail,
            extra={
                "channel": row.channel,
                "group_labels": labels,
                "outcome": "retry",
                "error": detail,
            },
        )
        return 0

    def _count(self, channel: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[(channel, outcome)] += 1

    def notifier(self, channel: str) -> Notifier:
        with self._lock:
            if channel not in self.notifiers:
                self.notifiers[channel] = build(channel, self.channels[channel])
            return self.notifiers[channel]

    def start(self) -> None:
        for channel in self.channels:
            self._start(channel)

    def _start(self, channel: str) -> None:
        self._wake[channel] = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(channel,), name=f"sentinel-send-{channel}", daemon=True
        )
        self._threads[channel] = thread
        thread.start()

    def reconfigure(self, channels: Mapping[str, Any]) -> None:
        """New channel settings: rebuild changed notifiers, start threads for new channels.
        Rows for removed channels are dropped (and logged) by their next delivery attempt."""
        with self._lock:
            for name, config in channels.items():
                if self.channels.get(name) != config:
                    self.notifiers.pop(name, None)
            self.channels = dict(channels)
        if self._threads:
            for name in channels:
                if name not in self._threads:
                    self._start(name)

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def stop(self, timeout: float = 8.0) -> None:
        """Let in-flight sends finish (bounded), then return; queued rows stay for next start."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads.values():
            thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self, channel: str) -> None:
        wake = self._wake[channel]
        while not self._stop.is_set():
            try:
                self.drain(channel)
                next_due = self._next_due(channel)
            except Exception:
                log.exception("outbox sender for %s failed; retrying", channel)
                next_due = None
            wait = 1.0 if next_due is None else min(1.0, max(0.0, next_due - self.clock.now()))
            wake.wait(wait)
            wake.clear()

    def _next_due(self, channel: str) -> float | None:
        rows = self.db.query(
            "SELECT MIN(next_attempt_at) AS t FROM outbox WHERE channel = ?", (channel,)
        )
        return rows[0]["t"] if rows else None

    def drain(self, channel: str | None = None) -> int:
        """Deliver every row that is due (for one channel, or all); returns how many went out."""
        sent = 0
        for row in self.outbox.due(self.clock.now()):
            if self._stop.is_set() and channel is not None:
                break
            if channel is not None and row.channel != channel:
                continue
            sent += self.deliver(row)
        return sent

    def deliver(self, row: OutboxRow) -> int:
        config = self.channels.get(row.channel)
        if config is None:
            log.error(
                "dropping notification for %s: channel %r is no longer configured",
                row.group_key,
                row.channel,
            )
            self.outbox.give_up(row, "channel removed")
            self._count(row.channel, "dropped")
            return 0
        last = self.nflog.get(row.group_key, row.channel)
        alerts = row.alerts
        if not config.send_resolved:
            alerts = tuple(a for a in alerts if a.state is not State.RESOLVED)
        if not alerts:
            # Nothing the channel wants to hear (a resolve with send_resolved off): record it so
            # the log forgets the firing set, without contacting the channel.
            self.outbox.delivered(row, dict(last.memo) if last else {}, self.clock.now())
            return 0
        notification = Notification(
            channel=row.channel,
            group_key=row.group_key,
            group_labels=row.group_labels,
            status="firing" if row.status == "firing" else "resolved",
            alerts=alerts,
            memo=dict(last.memo) if last else {},
        )
        labels = dict(row.group_labels)
        try:
            memo = self.notifier(row.channel).send(notification)
        except Retryable as e:
            return self._retry(row, e.detail, e.retry_after, labels)
        except Permanent as e:
            self.outbox.give_up(row, e.detail)
            self._count(row.channel, "failed")
            log.error(
                "notification to %s for %s FAILED PERMANENTLY, not retrying: %s",
                row.channel,
                row.group_key,
                e.detail,
                extra={
                    "channel": row.channel,
                    "group_labels": labels,
                    "outcome": "failed",
                    "error": e.detail,
                },
            )
            return 0
        except Exception as e:  # a bug in a channel: keep the page, retry with backoff
            log.exception(
                "notification to %s for %s raised unexpectedly", row.channel, row.group_key
            )
            return self._retry(row, f"{type(e).__name__}: {e}", None, labels)
        self.outbox.delivered(row, dict(memo or {}), self.clock.now())
        self._count(row.channel, "success")
        log.info(
            "notification sent to %s: %s %s (%d firing, %d resolved, %s)",
            row.channel,
            row.status,
            row.group_key,
            len(row.firing),
            len(row.resolved),
            row.reason,
            extra={
                "channel": row.channel,
                "group_labels": labels,
                "outcome": "success",
                "status": row.status,
            },
        )
        return 1
