"""The event stream: one thread consuming Celery events and applying them to the fact store.

Messages are consumed with kombu and JSON bodies decoded with orjson, skipping Celery's
per-event clock bookkeeping: that is where a plain EventReceiver spends its time. On Redis,
where events travel over PUB/SUB, kombu still declares, binds and subscribes (so its topic
names, prefixes, auth and TLS all apply), but the subscriber socket is then read directly:
kombu's generic path builds a Message per event message and parses every RESP frame in Python,
costing more than everything sentinel does with the event. Each read of the socket becomes one
batch, applied to the store under one lock acquisition.

A dropped connection (broker restart, or Redis cutting a PUB/SUB subscriber that fell behind)
is logged, recorded as a probe failure, and re-established with capped backoff; Celery never
replays events, so the gap is reported, not hidden.
"""

from __future__ import annotations

import binascii
import logging
import select
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
        self._lost_at: float | None = None  # when the stream dropped, until it is back
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
                now = self.clock.now()
                if self._lost_at is None:
                    self._lost_at = now
                self.store.probe_failed(self.source, f"{type(e).__name__}: {e}", now)
                delay = backoff.next()
                log.warning(
                    "event stream lost (%s: %s); reconnecting in %.1fs", type(e).__name__, e, delay
                )
                self._stop.wait(delay)
                self.reconnects += 1

    def _consume(self, backoff: Backoff) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            # On filesystem:// a binding outlives its consumer and keeps collecting message
            # files, so a restart reuses one queue there instead of leaving one behind.
            node_id = "events" if conn.transport.driver_type == "filesystem" else None
            receiver = self.app.events.Receiver(
                conn, handlers={}, queue_prefix="sentinel", node_id=node_id
            )
            with conn.Consumer(
                queues=[receiver.queue],
                on_message=self._on_message,
                no_ack=True,
                accept=["json"],
            ) as consumer:
                # Ask every worker for a heartbeat now, so liveness is known within a second.
                # Subscribed first: kombu would only PSUBSCRIBE at the first drain_events,
                # and the answers to this broadcast could be published before that.
                raw = _raw_subscriber(consumer)
                self.app.control.broadcast("heartbeat", connection=conn)
                now = self.clock.now()
                self.store.probe_ok(self.source, now)
                if self._lost_at is not None:
                    self.store.stream_restored(self._lost_at, now)
                    self._lost_at = None
                self.connected.set()
                if self.reconnects:
                    log.info("event stream re-established after %d attempt(s)", backoff.attempt)
                else:
                    log.info("event stream subscribed on %s", conn.as_uri())
                backoff.reset()
                if raw is not None:
                    self._pump(raw, consumer.channel)
                    return
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

    # -- Redis PUB/SUB, read directly ------------------------------------------------------

    def _pump(self, sock: Any, channel: Any) -> None:
        """Read the subscriber socket until stopped; every read is decoded and applied whole."""
        buf = b""
        pending = getattr(sock, "pending", None)  # TLS: decrypted bytes select() cannot see
        while not self._stop.is_set():
            if not (pending and pending()):
                ready, _, _ = select.select([sock], [], [], 1.0)
                if not ready:
                    self.store.probe_ok(self.source, self.clock.now())
                    continue
            data = sock.recv(1 << 18)
            if not data:
                raise ConnectionError("the broker closed the event subscription")
            buf = buf + data if buf else data
            payloads, used = pubsub_payloads(buf)
            buf = buf[used:]
            if payloads:
                self._apply_payloads(payloads, channel)

    def _apply_payloads(self, payloads: list[bytes], channel: Any) -> None:
        loads = orjson.loads
        a2b = binascii.a2b_base64
        batch: list[dict[str, Any]] = []
        malformed = 0
        for payload in payloads:
            try:
                envelope = loads(payload)
                headers = envelope.get("headers") or {}
                if envelope.get("content-type") != "application/json" or "compression" in headers:
                    # Not what Celery sends by default: let kombu decode it, or refuse it.
                    self._on_message(channel.Message(envelope, channel=channel))
                    continue
                body = envelope["body"]
                if (envelope.get("properties") or {}).get("body_encoding") == "base64":
                    body = a2b(body)
                decoded = loads(body)
            except Exception:  # any undecodable message is counted, never fatal
                malformed += 1
                continue
            if type(decoded) is dict:
                if type(decoded.get("type")) is str:
                    batch.append(decoded)
                else:
                    malformed += 1
            elif type(decoded) is list:
                for event in decoded:
                    if type(event) is dict and type(event.get("type")) is str:
                        batch.append(event)
                    else:
                        malformed += 1
            else:
                malformed += 1
        if malformed:
            self.store.count_malformed(malformed)
        if batch:
            self.store.apply_events(batch, self.clock.now())


def _raw_subscriber(consumer: Any) -> Any:
    """The socket of kombu's Redis subscriber connection, subscribed; None off Redis."""
    channel = consumer.channel
    transport = getattr(getattr(channel, "connection", None), "driver_type", None)
    if transport != "redis" or not getattr(channel, "active_fanout_queues", None):
        return None
    try:
        sub = channel.subclient
        if sub.connection is None:  # what kombu's poller does before its first LISTEN
            try:
                sub.connection = sub.connection_pool.get_connection()
            except TypeError:  # redis-py < 5 wants a command name
                sub.connection = sub.connection_pool.get_connection("_")
        channel._subscribe()
        sock = sub.connection._sock
    except AttributeError:  # a kombu or redis-py without these internals: kombu's own path
        return None
    return sock


_CRLF = b"\r\n"


def pubsub_payloads(buf: bytes) -> tuple[list[bytes], int]:
    """The data of every complete (p)message frame in buf, and how many bytes were used.

    Speaks RESP2 (`*` arrays) and RESP3 (`>` pushes). Other frames (subscribe confirmations)
    are skipped; an incomplete frame at the end is left for the next read.
    """
    out: list[bytes] = []
    pos, n = 0, len(buf)
    find = buf.find
    while pos < n:
        start = pos
        end = find(_CRLF, pos)
        if end < 0:
            break
        kind = buf[pos]
        if kind == 0x2D:  # '-': an error reply
            raise ConnectionError(buf[pos + 1 : end].decode(errors="replace"))
        if kind not in (0x2A, 0x3E):  # not '*' or '>': a scalar reply, skip it
            pos = end + 2
            continue
        count = int(buf[pos + 1 : end])
        pos = end + 2
        items: list[bytes] = []
        for _ in range(count):
            end = find(_CRLF, pos)
            if end < 0:
                break
            if buf[pos] == 0x24:  # '$': bulk string
                size = max(0, int(buf[pos + 1 : end]))  # -1: a null, read as empty
                stop = end + 2 + size
                if stop + 2 > n:
                    break
                items.append(buf[end + 2 : stop])
                pos = stop + 2
            else:  # ':' integer, '+' simple string
                items.append(buf[pos + 1 : end])
                pos = end + 2
        else:
            if count == 4 and items[0] == b"pmessage":
                out.append(items[3])
            elif count == 3 and items[0] == b"message":
                out.append(items[2])
            continue
        pos = start  # incomplete: wait for the rest
        break
    return out, pos
