"""The Redis PUB/SUB fast path: kombu subscribes, then sentinel reads the subscriber socket itself.

A hack on purpose, kept here and loud (like dramatiq's middleware/threading.py): kombu's generic
path builds a Message per event and parses every RESP frame in Python, costing more than
everything sentinel does with the event. What it relies on, beyond any public API:

- kombu's Redis `Channel.subclient` (a redis-py PubSub), `Channel._subscribe()` and
  `Channel.active_fanout_queues`;
- redis-py's `PubSub.connection`, `connection_pool.get_connection()` and `Connection._sock`.

`subscriber_socket` uses them only with kombu and redis-py versions known to work (KNOWN) and
says so with a WARNING whenever it falls back to kombu's path;
tests/unit/collectors/test_redis_pubsub.py is the canary that fails when the internals change.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from packaging.version import Version

log = logging.getLogger("sentinel.events")

MAX_MESSAGE = 1 << 20  # bytes in one event message (envelope included); Celery's are < 64 KiB

# [lowest, first unknown) versions of each library the direct reader has been run against.
KNOWN = {"kombu": ("5.3", "5.8"), "redis": ("4.5", "9")}


def untested_versions() -> list[str]:
    """`name version` of each library outside KNOWN; empty when every one is known to work."""
    out = []
    for name, (low, high) in KNOWN.items():
        try:
            found = version(name)
        except PackageNotFoundError:
            out.append(f"{name} (not installed)")
            continue
        if not Version(low) <= Version(found) < Version(high):
            out.append(f"{name} {found}")
    return out


def subscriber_socket(consumer: Any) -> Any:
    """The socket of kombu's Redis subscriber connection, subscribed; None off Redis, or when
    these internals cannot be trusted (then kombu's own path reads the events, slower)."""
    channel = consumer.channel
    transport = getattr(getattr(channel, "connection", None), "driver_type", None)
    if transport != "redis" or not getattr(channel, "active_fanout_queues", None):
        return None
    untested = untested_versions()
    if untested:
        log.warning(
            "Redis events: %s not known to work with the direct PUB/SUB reader; reading"
            " events through kombu instead (correct, but slower)",
            ", ".join(untested),
        )
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
    except AttributeError as e:  # a kombu or redis-py without these internals: kombu's path
        log.warning(
            "Redis events: kombu/redis-py internals changed (%s); reading events through kombu"
            " instead (correct, but slower)",
            e,
        )
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
