"""Drains the outbox: per channel, a bounded number of sends in flight at once, one per group.

A slow receiver holding each request for seconds then delays only the groups it is answering,
not every group behind them: different groups go out concurrently (at most the channel's
`max_in_flight`), while one group's notifications to one channel stay strictly in order, because
the outbox holds one row per (group, channel) and a row is never claimed while its group is in
flight. A newer decision for a group rewrites that row (the send in flight finishes, then the
newer one goes); it never displaces another group's row.

This is the one place that retries. Retryable errors back off exponentially with jitter
(honouring Retry-After) until the send succeeds or a newer decision cancels it; permanent
errors are logged loudly, counted and dropped (the next group flush decides afresh).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from sentinel.backoff import Backoff
from sentinel.channels import build
from sentinel.channels.base import Notification, Notifier, Permanent, Retryable
from sentinel.clock import Clock
from sentinel.db.engine import Engine, Fenced
from sentinel.links import with_generator_urls
from sentinel.model import State
from sentinel.notify.history import Attempt, NotificationHistory, SqlNotificationHistory, refs
from sentinel.notify.nflog import NotificationLog
from sentinel.notify.outbox import Outbox, OutboxRow

log = logging.getLogger("sentinel.notify")

RETRY_BASE = 1.0
RETRY_CAP = 300.0
# Sends in flight at once per channel when its config does not say (`max_in_flight`):
# Alertmanager runs every group's send on its own goroutine, without a cap; a cap keeps a
# storm of groups from opening hundreds of connections to one receiver.
MAX_IN_FLIGHT = 16
# How long the channel loop sleeps at most when nothing wakes it (a row decided by another
# process, a clock jump): the outbox is the truth, the wake-ups are only a shortcut.
IDLE_POLL = 1.0


def retry_delay(attempts: int, retry_after: float | None, backoff: Backoff) -> float:
    backoff.attempt = attempts
    return max(retry_after or 0.0, backoff.next())


class _Lane:
    """One channel's delivery: the groups in flight and the threads sending them."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.wake = threading.Event()
        self.in_flight: dict[str, threading.Thread] = {}  # group key -> its send
        self.lock = threading.Lock()
        self.loop: threading.Thread | None = None


class Sender:
    def __init__(
        self,
        db: Engine,
        channels: Mapping[str, Any],
        clock: Clock,
        notifiers: Mapping[str, Notifier] | None = None,
        history: NotificationHistory | None = None,
        external_url: Callable[[], str] = str,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.db = db
        # Checked before every claim and again right before contacting the channel: an HA
        # follower, or a leader whose lease is about to run out, sends nothing (sentinel/ha).
        self.may_send = may_send
        self.outbox = Outbox(db)
        self.nflog = NotificationLog(db)
        self.history = history if history is not None else SqlNotificationHistory(db)
        self.clock = clock
        self.external_url = external_url  # read per send: a reload may change it
        self.channels = dict(channels)
        self.notifiers: dict[str, Notifier] = dict(notifiers or {})
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def _retry(
        self, row: OutboxRow, detail: str, retry_after: float | None, labels: dict[str, str]
    ) -> int:
        delay = retry_delay(row.attempts, retry_after, Backoff(RETRY_BASE, RETRY_CAP))
        self.outbox.retry_later(row, detail, self.clock.now() + delay)
        self._count(row.channel, "retry")
        self._remember(row, "retry", detail)
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

    def _remember(self, row: OutboxRow, outcome: str, error: str | None = None) -> None:
        """One line of the notification history for this attempt."""
        alerts, more = refs(row.alerts)
        self.history.record(
            Attempt(
                at=self.clock.now(),
                channel=row.channel,
                group_key=row.group_key,
                group_labels=row.group_labels,
                status="firing" if row.status == "firing" else "resolved",
                alerts=alerts,
                more_alerts=more,
                attempt=row.attempts + 1,
                outcome=outcome,
                error=error,
            )
        )

    def _count(self, channel: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[(channel, outcome)] += 1

    def notifier(self, channel: str) -> Notifier:
        with self._lock:
            if channel not in self.notifiers:
                self.notifiers[channel] = build(channel, self.channels[channel])
            return self.notifiers[channel]

    def max_in_flight(self, channel: str) -> int:
        config = self.channels.get(channel)
        return max(1, int(getattr(config, "max_in_flight", MAX_IN_FLIGHT) or MAX_IN_FLIGHT))

    # -- the running daemon: one loop per channel, one short-lived thread per send -----------

    def start(self) -> None:
        for channel in self.channels:
            self._start(channel)

    def _start(self, channel: str) -> None:
        lane = self._lanes[channel] = _Lane(channel)
        lane.loop = threading.Thread(
            target=self._run, args=(lane,), name=f"sentinel-send-{channel}", daemon=True
        )
        lane.loop.start()

    def reconfigure(self, channels: Mapping[str, Any]) -> None:
        """New channel settings: rebuild changed notifiers, start loops for new channels.
        Rows for removed channels are dropped (and logged) by their next delivery attempt;
        sends in flight finish with the notifier they started with."""
        with self._lock:
            for name, config in channels.items():
                if self.channels.get(name) != config:
                    self.notifiers.pop(name, None)
            self.channels = dict(channels)
        if self._lanes:
            for name in channels:
                if name not in self._lanes:
                    self._start(name)

    def wake(self) -> None:
        for lane in list(self._lanes.values()):
            lane.wake.set()

    def in_flight(self, channel: str) -> int:
        lane = self._lanes.get(channel)
        if lane is None:
            return 0
        with lane.lock:
            return len(lane.in_flight)

    def stop(self, timeout: float = 8.0) -> None:
        """Claim nothing new, let the sends in flight finish (bounded), then return; rows still
        queued (and any send cut off by the bound) stay in the outbox for the next start."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for lane in list(self._lanes.values()):
            if lane.loop is not None:
                lane.loop.join(max(0.1, deadline - time.monotonic()))
        for lane in list(self._lanes.values()):
            with lane.lock:
                sends = [t for t in lane.in_flight.values() if t is not threading.current_thread()]
            for thread in sends:
                thread.join(max(0.1, deadline - time.monotonic()))
            if cut := sum(t.is_alive() for t in sends):
                log.warning(
                    "stopping with %d send(s) to %s still in flight; retried at next start",
                    cut,
                    lane.channel,
                )

    def _run(self, lane: _Lane) -> None:
        while not self._stop.is_set():
            try:
                next_due = None
                if self.may_send():  # a follower reads nothing: its database may be away
                    self._claim(lane)
                    next_due = self._next_due(lane)
            except Exception:
                log.exception("outbox sender for %s failed; retrying", lane.channel)
                next_due = None
            wait = IDLE_POLL
            if next_due is not None:
                wait = min(IDLE_POLL, max(0.0, next_due - self.clock.now()))
            lane.wake.wait(wait)
            lane.wake.clear()

    def _claim(self, lane: _Lane) -> None:
        """Start a send for each due row whose group is not in flight, up to the channel's cap.

        Due rows come oldest-due first, so when the cap is reached the groups waiting longest
        go next; a group in flight is skipped, not waited for, so it never holds up the others.
        """
        with lane.lock:
            busy = tuple(lane.in_flight)
            free = self.max_in_flight(lane.channel) - len(busy)
        if free <= 0 or not self.may_send():
            return
        for listed in self.outbox.due(
            self.clock.now(), limit=free, channel=lane.channel, exclude=busy
        ):
            if self._stop.is_set() or not self.may_send():
                return
            row = self.outbox.claim(listed.group_key, listed.channel, self.clock.now())
            if row is None:
                continue  # cancelled since it was listed
            thread = threading.Thread(
                target=self._send,
                args=(lane, row),
                name=f"sentinel-send-{lane.channel}",
                daemon=True,
            )
            with lane.lock:
                lane.in_flight[row.group_key] = thread
            thread.start()

    def _send(self, lane: _Lane, row: OutboxRow) -> None:
        try:
            self.deliver(row)
        except Fenced as e:
            # Sent (perhaps) but not recorded: the new leader finds the claim and sends again,
            # the one duplicate a failover can make (docs: README, High availability).
            log.error("delivery to %s for %s not recorded: %s", row.channel, row.group_key, e)
        except Exception:
            # The row stays in the outbox (nothing recorded it), so the next claim retries it.
            log.exception("delivery to %s for %s failed; retrying", row.channel, row.group_key)
        finally:
            with lane.lock:
                lane.in_flight.pop(row.group_key, None)
            lane.wake.set()  # a slot is free, and this group's newer decision may be waiting

    def _next_due(self, lane: _Lane) -> float | None:
        with lane.lock:
            busy = tuple(lane.in_flight)
            full = len(busy) >= self.max_in_flight(lane.channel)
        if full:
            return None  # nothing can start until a send ends, and its end wakes the loop
        return self.outbox.next_due(channel=lane.channel, exclude=busy)

    # -- synchronous delivery (tests, one-shot commands) ------------------------------------

    def drain(self, channel: str | None = None) -> int:
        """Deliver every row that is due now (for one channel, or all), one at a time; returns
        how many went out. Each (group, channel) is tried at most once per call, as it stands
        when its turn comes: a row rewritten or cancelled meanwhile is sent as it is now."""
        if not self.may_send():
            return 0
        sent = 0
        now = self.clock.now()
        for row in self.outbox.due(now, limit=None, channel=channel):
            if self._stop.is_set() and channel is not None:
                break
            lane = self._lanes.get(row.channel)
            if lane is None:
                if current := self.outbox.claim(row.group_key, row.channel, now):
                    sent += self.deliver(current)
                continue
            with lane.lock:  # the channel's loop may be sending this group right now
                if row.group_key in lane.in_flight:
                    continue
                lane.in_flight[row.group_key] = threading.current_thread()
            try:
                if current := self.outbox.claim(row.group_key, row.channel, now):
                    sent += self.deliver(current)
            finally:
                with lane.lock:
                    lane.in_flight.pop(row.group_key, None)
                lane.wake.set()
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
            self._remember(row, "dropped", "channel removed")
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
            alerts=with_generator_urls(base := self.external_url(), alerts),
            memo=dict(last.memo) if last else {},
            external_url=base,
        )
        labels = dict(row.group_labels)
        if not self.may_send():
            # Claimed under a lease that is running out: the next leader sends it (the claim
            # marks it as possibly sent, so nobody withdraws it meanwhile).
            log.warning("not sending %s to %s: no longer leader", row.group_key, row.channel)
            return 0
        try:
            memo = self.notifier(row.channel).send(notification)
        except Retryable as e:
            return self._retry(row, e.detail, e.retry_after, labels)
        except Permanent as e:
            self.outbox.give_up(row, e.detail)
            self._count(row.channel, "failed")
            self._remember(row, "failed", e.detail)
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
        self._remember(row, "success")
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
