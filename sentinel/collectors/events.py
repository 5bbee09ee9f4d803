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
from collections.abc import Mapping
from typing import Any

import orjson
from celery import Celery

from sentinel.backoff import Backoff, wait_to_reconnect
from sentinel.clock import Clock
from sentinel.collectors.redis_pubsub import MAX_MESSAGE, PubSubReader, subscriber_socket
from sentinel.facts.store import FactStore
from sentinel.ratelog import RateLimitedLog

log = logging.getLogger("sentinel.events")

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
        # A recording tap (sentinel.record) takes the Redis path's message bodies as JSON
        # text, as decoded here: cheaper than encoding the decoded events again.
        self._record_bodies = getattr(store, "apply_event_bodies", None)

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
                raw = subscriber_socket(consumer)
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
            body = decode_envelope(message.content_type, message.headers, message.body)
        except Refused as e:
            self._refuse(e.reason, e.what)
            return
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
        batch: list[dict[str, Any]] = []
        record = self._record_bodies
        bodies: list[bytes | str] = []
        malformed = refused = 0
        for payload in payloads:
            try:
                envelope = loads(payload)
                properties = envelope.get("properties") or {}
                text = body_text(
                    envelope.get("content-type"),
                    envelope.get("headers"),
                    envelope["body"],
                    base64=properties.get("body_encoding") == "base64",
                )
                decoded = _loads(text)
            except Refused:
                refused += 1
                continue
            except Exception:  # any undecodable message is counted, never fatal
                malformed += 1
                continue
            if record is not None:  # base64 decoded once, here, not again on the writer
                bodies.append(text)
            malformed += collect_events(decoded, batch)
        if malformed:
            self.store.count_malformed(malformed)
        if refused:
            self._refuse("refused", f"{refused} compressed or non-JSON event message(s)", refused)
        if batch:
            if record is not None:
                record(batch, bodies, self.clock.now())
            else:
                self.store.apply_events(batch, self.clock.now())

    def _apply_bodies(self, bodies: list[Any]) -> None:
        """Decoded message bodies (an event, or Celery's list of them) to the store."""
        good: list[dict[str, Any]] = []
        malformed = 0
        for body in bodies:
            malformed += collect_events(body, good)
        if malformed:
            self.store.count_malformed(malformed)
        if good:
            self.store.apply_events(good, self.clock.now())


class Refused(Exception):
    """An event message dropped unread: `reason` is its drop counter, `what` the log's words."""

    def __init__(self, reason: str, what: str) -> None:
        super().__init__(what)
        self.reason = reason
        self.what = what


def decode_envelope(
    content_type: str | None,
    headers: Mapping[str, Any] | None,
    body: bytes | str,
    base64: bool = False,
) -> Any:
    """The decoded body of one event message, from its envelope's fields, whichever path read
    it (kombu's Message, or the raw PUB/SUB envelope). Raises Refused for what Celery never
    sends, unread (a 1 KiB bz2 bomb inflates to GiB), and anything else when undecodable."""
    return _loads(body_text(content_type, headers, body, base64))


def body_text(
    content_type: str | None,
    headers: Mapping[str, Any] | None,
    body: bytes | str,
    base64: bool = False,
) -> bytes | str:
    """The JSON text of one event message's body (decode_envelope before the JSON)."""
    # content-type first: it short-circuits before a malformed `headers` is looked into.
    if content_type != "application/json" or "compression" in (headers or {}):
        raise Refused("refused", "a compressed or non-JSON event message")
    if len(body) > MAX_MESSAGE:
        raise Refused("oversize", f"an event message of {len(body)} bytes")
    return binascii.a2b_base64(body) if base64 else body


def collect_events(decoded: Any, out: list[dict[str, Any]]) -> int:
    """Append the events of a decoded body (an event, or Celery's list of them) to out; the
    number of malformed ones."""
    malformed = 0
    for event in decoded if type(decoded) is list else (decoded,):
        if type(event) is dict and type(event.get("type")) is str:
            out.append(event)
        else:
            malformed += 1
    return malformed


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
