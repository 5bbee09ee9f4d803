"""The event stream: one thread consuming Celery events and applying them to the fact store.

Messages are consumed with kombu directly and JSON bodies decoded with orjson, skipping
Celery's per-event clock bookkeeping: that is where a plain EventReceiver spends its time.
A dropped connection (broker restart, or Redis cutting a PUB/SUB subscriber that fell behind)
is logged, recorded as a probe failure, and re-established with capped backoff; Celery never
replays events, so the gap is reported, not hidden.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from celery import Celery

from sentinel.backoff import Backoff
from sentinel.clock import Clock
from sentinel.store.facts import FactStore

log = logging.getLogger("sentinel.events")


class EventCollector:
    source = "events"

    def __init__(self, app: Celery, store: FactStore, clock: Clock) -> None:
        self.app = app
        self.store = store
        self.clock = clock
        self.connected = threading.Event()
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sentinel-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.connected.clear()

    def _run(self) -> None:
        backoff = Backoff(base=0.5, cap=60.0)
        while not self._stop.is_set():
            try:
                self._consume(backoff)
            except Exception as e:  # any broker/transport failure: report, wait, reconnect
                self.connected.clear()
                self.store.probe_failed(self.source, f"{type(e).__name__}: {e}", self.clock.now())
                delay = backoff.next()
                log.warning(
                    "event stream lost (%s: %s); reconnecting in %.1fs", type(e).__name__, e, delay
                )
                self._stop.wait(delay)
                self.reconnects += 1

    def _consume(self, backoff: Backoff) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            receiver = self.app.events.Receiver(conn, handlers={}, queue_prefix="sentinel")
            with conn.Consumer(
                queues=[receiver.queue],
                on_message=self._on_message,
                no_ack=True,
                accept=["json"],
            ):
                # Ask every worker for a heartbeat now, so liveness is known within a second.
                self.app.control.broadcast("heartbeat", connection=conn)
                self.store.probe_ok(self.source, self.clock.now())
                self.connected.set()
                if self.reconnects:
                    log.info("event stream re-established after %d attempt(s)", backoff.attempt)
                else:
                    log.info("event stream subscribed on %s", conn.as_uri())
                backoff.reset()
                while not self._stop.is_set():
                    try:
                        conn.drain_events(timeout=1.0)
                    except TimeoutError:  # quiet second: check the link is still alive
                        conn.heartbeat_check()
                        self.store.probe_ok(self.source, self.clock.now())

    def _on_message(self, message: Any) -> None:
        try:
            if message.content_type == "application/json" and "compression" not in message.headers:
                body = orjson.loads(message.body)
            else:
                body = message.decode()
        except Exception:
            self.store.count_malformed(1)
            return
        events = body if isinstance(body, list) else [body]
        good = [e for e in events if isinstance(e, dict) and isinstance(e.get("type"), str)]
        if len(good) != len(events):
            self.store.count_malformed(len(events) - len(good))
        if good:
            self.store.apply_events(good, self.clock.now())
