"""The event stream: one thread consuming Celery events and applying them to the fact store.

Messages are consumed with kombu and JSON bodies decoded with orjson, skipping Celery's
per-event clock bookkeeping: that is where a plain EventReceiver spends its time. On Redis,
where events travel over PUB/SUB, kombu still declares, binds and subscribes (so its topic
names, prefixes, auth and TLS all apply), but the subscriber socket is then read directly:
kombu's generic path builds a Message per event message and parses every RESP frame in Python,
costing more than everything sentinel does with the event. Each read of the socket becomes one
batch, applied to the store under one lock acquisition.

A dropped connection (broker restart, or Redis cutting a PUB/SUB subscriber that fell behind)
is logged, recorded as a probe failure, and re-established with capped backoff, cut short as
soon as the broker answers TCP again; Celery never replays events, so the gap is reported, not
hidden. What a message holds can never drop the connection: a message is decoded or refused,
and each event applied or dropped, alone and counted (README "Hostile events").

Bounds: a message larger than MAX_MESSAGE bytes is skipped unread (its bytes are discarded as
they arrive, never buffered); compressed or non-JSON bodies are refused, never decoded (Celery
sends neither: its event serializer is JSON and it never compresses events).
"""

from __future__ import annotations

import binascii
import json
import logging
import select
import socket
import threading
from typing import Any

import orjson
from celery import Celery

from sentinel.backoff import Backoff, wait_to_reconnect
from sentinel.clock import Clock
from sentinel.facts.store import FactStore
from sentinel.ratelog import RateLimitedLog

log = logging.getLogger("sentinel.events")

MAX_MESSAGE = 1 << 20  # bytes in one event message (envelope included); Celery's are < 64 KiB
RECONNECT_CAP = 60.0  # between attempts while the broker does not even answer TCP
ANSWERING_CAP = 5.0  # ... and once it does: a restarted broker is back within seconds


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
        self._endpoint: tuple[str, int] | None = None  # the broker's TCP address, if it has one
        self._thread: threading.Thread | None = None
        self._log = RateLimitedLog(log, interval=10.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sentinel-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.connected.clear()

    def _run(self) -> None:
        backoff = Backoff(base=0.5, cap=RECONNECT_CAP)
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
                    "event stream lost (%s: %s); reconnecting in %.1fs at most",
                    type(e).__name__,
                    e,
                    delay,
                )
                wait_to_reconnect(self._stop, delay, self._answers, fast=ANSWERING_CAP)
                self.reconnects += 1

    def _answers(self) -> bool | None:
        """Does the broker accept a TCP connection? None when it has no TCP address."""
        if self._endpoint is None:
            return None
        try:
            socket.create_connection(self._endpoint, timeout=1.0).close()
        except OSError:
            return False
        return True

    def _consume(self, backoff: Backoff) -> None:
        with self.app.connection_for_read() as conn:
            if self._endpoint is None:
                self._endpoint = _tcp_endpoint(conn)
            conn.ensure_connection(max_retries=1, interval_start=1, timeout=5)
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
        # kombu's path (AMQP, filesystem): called from drain_events, so nothing may escape.
        try:
            if "compression" in (message.headers or {}) or message.content_type != (
                "application/json"
            ):
                self._refuse("refused", "a compressed or non-JSON event message")
                return
            raw = message.body
            if len(raw) > MAX_MESSAGE:
                self._refuse("oversize", f"an event message of {len(raw)} bytes")
                return
            body = _loads(raw)
        except Exception:
            self.store.count_malformed(1)
            return
        try:
            self._apply_bodies([body])
        except Exception:  # never reached by content (apply_events isolates events)
            self._log.exception(self.clock.now(), "error", "applying an event message raised")

    def _refuse(self, reason: str, what: str, n: int = 1) -> None:
        self.store.count_dropped(reason, n)
        self._log.warning(self.clock.now(), reason, "%s dropped unread (%s)", what, reason)

    # -- Redis PUB/SUB, read directly ------------------------------------------------------

    def _pump(self, sock: Any, channel: Any) -> None:
        """Read the subscriber socket until stopped; every read is decoded and applied whole."""
        reader = PubSubReader(MAX_MESSAGE)
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
            oversize = reader.oversize
            payloads = reader.feed(data)  # raises only on what Redis itself says (an error)
            if reader.oversize != oversize:
                n = reader.oversize - oversize
                self._refuse("oversize", f"{n} event message(s) over {MAX_MESSAGE} bytes", n)
            if payloads:
                try:
                    self._apply_payloads(payloads, channel)
                except Exception:  # never reached by content: each payload is isolated
                    self._log.exception(self.clock.now(), "error", "applying events raised")

    def _apply_payloads(self, payloads: list[bytes], channel: Any = None) -> None:
        loads = orjson.loads
        a2b = binascii.a2b_base64
        batch: list[dict[str, Any]] = []
        malformed = refused = 0
        for payload in payloads:
            try:
                envelope = loads(payload)
                headers = envelope.get("headers") or {}
                if envelope.get("content-type") != "application/json" or "compression" in headers:
                    # Not what Celery sends: refused unread (a 1 KiB bz2 bomb inflates to GiB).
                    refused += 1
                    continue
                body = envelope["body"]
                if (envelope.get("properties") or {}).get("body_encoding") == "base64":
                    body = a2b(body)
                decoded = _loads(body)
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
        if refused:
            self._refuse("refused", f"{refused} compressed or non-JSON event message(s)", refused)
        if batch:
            self.store.apply_events(batch, self.clock.now())

    def _apply_bodies(self, bodies: list[Any]) -> None:
        """Decoded message bodies (an event, or Celery's list of them) to the store."""
        good: list[dict[str, Any]] = []
        malformed = 0
        for body in bodies:
            events = body if isinstance(body, list) else [body]
            for e in events:
                if isinstance(e, dict) and isinstance(e.get("type"), str):
                    good.append(e)
                else:
                    malformed += 1
        if malformed:
            self.store.count_malformed(malformed)
        if good:
            self.store.apply_events(good, self.clock.now())


def _loads(raw: bytes | str) -> Any:
    """JSON as Celery writes it: orjson, or the stdlib for the NaN/Infinity that kombu's json
    can emit and orjson refuses (the numbers are then range-checked like any other)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _tcp_endpoint(conn: Any) -> tuple[str, int] | None:
    """(host, port) of a broker reached over TCP; None for filesystem://, memory://, sockets."""
    try:
        host, port = conn.hostname, conn.port or conn.transport.default_port
    except Exception:  # an unusual transport: no probe, plain backoff
        return None
    if not host or not port or str(host).startswith("/"):
        return None
    return str(host), int(port)


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


class PubSubReader:
    """The data of every (p)message frame from a Redis subscriber socket, fed as it arrives.

    Speaks RESP2 (`*` arrays) and RESP3 (`>` pushes). Other frames (subscribe confirmations)
    are skipped; an incomplete frame is kept for the next read. A frame with a bulk string
    longer than `limit` (a huge payload or channel name) is dropped as soon as its length is
    read: its bytes are discarded as they arrive, so what is kept never exceeds about
    2 x limit, however large the message.
    """

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        self.oversize = 0  # frames dropped for a bulk string over the limit
        self._buf = b""
        self._discard = 0  # bytes of an oversize bulk string (and its CRLF) still to skip
        self._skip = 0  # items of a dropped frame still to skip after that

    @property
    def kept(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, n = 0, len(buf)
        find = buf.find
        limit = self.limit
        while pos < n:
            if self._discard or self._skip:
                pos = self._skip_rest(buf, pos)
                if self._discard or self._skip:
                    break  # the rest of the dropped frame is still to come
                continue
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
            complete = dropped = False
            for i in range(count):
                end = find(_CRLF, pos)
                if end < 0:
                    break
                if buf[pos] == 0x24:  # '$': bulk string
                    size = max(0, int(buf[pos + 1 : end]))  # -1: a null, read as empty
                    if size > limit:  # dropped now; its bytes are skipped as they come
                        self.oversize += 1
                        self._discard, self._skip = size + 2, count - i - 1
                        pos = end + 2
                        dropped = True
                        break
                    stop = end + 2 + size
                    if stop + 2 > n:
                        break
                    items.append(buf[end + 2 : stop])
                    pos = stop + 2
                else:  # ':' integer, '+' simple string
                    items.append(buf[pos + 1 : end])
                    pos = end + 2
            else:
                complete = True
            if dropped:
                continue
            if not complete:
                pos = start  # incomplete: wait for the rest
                break
            if count == 4 and items[0] == b"pmessage":
                out.append(items[3])
            elif count == 3 and items[0] == b"message":
                out.append(items[2])
        self._buf = buf[pos:] if pos < n else b""
        if len(self._buf) > 2 * limit + (1 << 16):  # only a broken stream gets here
            raise ConnectionError(f"a subscriber frame larger than {len(self._buf)} bytes")
        return out

    def _skip_rest(self, buf: bytes, pos: int) -> int:
        """Skip what is left of a dropped frame, as far as buf goes; the position reached."""
        n = len(buf)
        while True:
            if self._discard:
                take = min(self._discard, n - pos)
                pos += take
                self._discard -= take
                if self._discard:
                    return pos
            if not self._skip:
                return pos
            end = buf.find(_CRLF, pos)
            if end < 0:
                return pos
            if buf[pos] == 0x24:  # a bulk string: its bytes go too
                self._discard = max(0, int(buf[pos + 1 : end])) + 2
            pos = end + 2
            self._skip -= 1


def pubsub_payloads(buf: bytes, limit: int = MAX_MESSAGE) -> tuple[list[bytes], int]:
    """The data of every complete (p)message frame in buf, and how many bytes were used."""
    reader = PubSubReader(limit)
    payloads = reader.feed(buf)
    return payloads, len(buf) - reader.kept
