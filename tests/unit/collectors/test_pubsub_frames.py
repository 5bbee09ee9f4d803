"""The RESP reader behind the Redis event fast path: whole frames out, partial frames kept."""

from __future__ import annotations

import base64
import json

import pytest

from sentinel.clock import FakeClock
from sentinel.collectors.events import EventCollector
from sentinel.collectors.redis_pubsub import pubsub_payloads
from sentinel.facts.store import FactStore


def bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def pmessage(pattern: bytes, channel: bytes, data: bytes, push: bool = False) -> bytes:
    return (
        (b">4\r\n" if push else b"*4\r\n")
        + bulk(b"pmessage")
        + bulk(pattern)
        + bulk(channel)
        + bulk(data)
    )


def message(channel: bytes, data: bytes) -> bytes:
    return b"*3\r\n" + bulk(b"message") + bulk(channel) + bulk(data)


SUBSCRIBED = b"*3\r\n" + bulk(b"psubscribe") + bulk(b"/9.celeryev/*") + b":1\r\n"


def test_whole_frames_are_returned_and_confirmations_skipped() -> None:
    buf = (
        SUBSCRIBED
        + pmessage(b"/9.celeryev/*", b"/9.celeryev/task.x", b"one")
        + message(b"/9.celeryev/worker.heartbeat", b"two")
    )
    payloads, used = pubsub_payloads(buf)
    assert payloads == [b"one", b"two"]
    assert used == len(buf)


def test_resp3_push_frames() -> None:
    buf = pmessage(b"p", b"c", b"three", push=True)
    assert pubsub_payloads(buf) == ([b"three"], len(buf))


def test_data_containing_crlf_is_read_by_length() -> None:
    data = b'{"a": "x\r\ny"}'
    buf = pmessage(b"p", b"c", data)
    assert pubsub_payloads(buf) == ([data], len(buf))


@pytest.mark.parametrize("cut", [1, 5, 12, 30, -3, -1])
def test_an_incomplete_frame_is_left_for_the_next_read(cut: int) -> None:
    first = pmessage(b"p", b"c", b"complete")
    second = pmessage(b"p", b"c", b"partial-payload")
    buf = first + second[:cut]
    payloads, used = pubsub_payloads(buf)
    assert payloads == [b"complete"]
    assert used == len(first)
    # The rest arrives: the kept bytes plus the tail make the whole frame.
    rest = buf[used:] + second[len(buf) - len(first) :]
    assert pubsub_payloads(rest) == ([b"partial-payload"], len(second))


def test_an_error_reply_ends_the_subscription() -> None:
    with pytest.raises(ConnectionError, match="ERR"):
        pubsub_payloads(b"-ERR something went wrong\r\n")


def envelope(body: object, *, b64: bool = True, content_type: str = "application/json") -> bytes:
    raw = json.dumps(body).encode()
    return json.dumps(
        {
            "body": base64.b64encode(raw).decode() if b64 else raw.decode(),
            "content-type": content_type,
            "content-encoding": "utf-8",
            "headers": {},
            "properties": {"body_encoding": "base64"} if b64 else {},
        }
    ).encode()


def test_payloads_are_decoded_batched_and_malformed_ones_counted() -> None:
    store = FactStore()
    collector = EventCollector(app=None, store=store, clock=FakeClock())  # type: ignore[arg-type]
    heartbeat = {
        "type": "worker-heartbeat",
        "hostname": "w@h",
        "freq": 2.0,
        "active": 0,
        "processed": 0,
        "timestamp": 1.0,
    }
    batch = [{"type": "task-received", "uuid": "u1", "name": "t", "timestamp": 1.0}, {"no": "type"}]
    collector._apply_payloads(
        [
            envelope(heartbeat),
            envelope(batch),
            envelope(heartbeat, b64=False),
            b"not json",
            envelope("a string"),
        ],
        channel=None,
    )
    assert store.events_by_type["worker-heartbeat"] == 2
    assert store.events_by_type["task-received"] == 1
    assert store.drops.malformed == 3  # the event without a type, the non-JSON, the string
