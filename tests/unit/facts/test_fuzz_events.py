"""Property-based harnesses over what the event stream can deliver (`make fuzz` runs them long).

Over event dicts, message envelopes and PUB/SUB byte streams: no exception escapes, every event
is accepted or dropped under exactly one reason (accepted + dropped == seen), and state stays
within its caps with only finite, in-range numbers in it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.clock import FakeClock
from sentinel.collectors.events import EventCollector
from sentinel.collectors.redis_pubsub import PubSubReader
from sentinel.facts.store import FactStore
from tests.helpers import T0
from tests.unit.facts.fuzz_kit import check_state, events, message

# `make fuzz` runs 20,000 examples each: minutes, past the suite's 300 s per-test timeout.
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(3600)]


@given(batches=st.lists(events, min_size=1, max_size=5), step=st.floats(0, 100))
def test_any_events_are_applied_or_dropped_and_state_stays_bounded(
    batches: list[list[Any]], step: float
) -> None:
    store = FactStore(max_task_names=3, max_workers=3, max_inflight=5)
    now, seen = T0, 0
    for batch in batches:
        store.apply_events(batch, now)
        seen += len(batch)
        check_state(store, seen)
        now += step
    store.prune(now)
    with store.evaluating():
        for series in store.tasks.values():
            for measure in range(3):
                store.window_quantile(series, measure, 600.0, now, 0.95)


@given(messages=st.lists(message(), max_size=20))
def test_any_envelopes_are_decoded_or_refused_one_by_one(messages: list[tuple[bytes, int]]) -> None:
    store = FactStore(max_task_names=3, max_workers=3, max_inflight=5)
    collector = EventCollector(app=None, store=store, clock=FakeClock(T0))  # type: ignore[arg-type]
    collector._apply_payloads([p for p, _ in messages])
    check_state(store, sum(n for _, n in messages))


def resp_bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    """A subscriber byte stream, the payloads it must yield, and how many frames are oversize."""
    limit = 64
    stream, want, oversize = b"", [], 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 3))
        data = draw(st.binary(max_size=150))
        channel = draw(st.one_of(st.just(b"/0.celeryev/task.multi"), st.binary(max_size=100)))
        if kind == 0:  # a subscribe confirmation: skipped
            stream += b"*3\r\n" + resp_bulk(b"psubscribe") + resp_bulk(b"/0.celeryev/*") + b":1\r\n"
            continue
        if kind == 1:
            stream += b"*3\r\n" + resp_bulk(b"message") + resp_bulk(channel) + resp_bulk(data)
        else:
            head = b">4\r\n" if kind == 3 else b"*4\r\n"
            stream += head + resp_bulk(b"pmessage") + resp_bulk(b"/0.celeryev/*")
            stream += resp_bulk(channel) + resp_bulk(data)
        if len(channel) > limit or len(data) > limit:
            oversize += 1
        else:
            want.append(data)
    return stream, want, oversize


@given(case=frames(), cuts=st.lists(st.integers(1, 400), max_size=30))
def test_any_split_of_a_subscriber_stream_yields_the_same_payloads(
    case: tuple[bytes, list[bytes], int], cuts: list[int]
) -> None:
    stream, want, oversize = case
    reader = PubSubReader(limit=64)
    out: list[bytes] = []
    pos = 0
    for size in [*cuts, len(stream)]:
        chunk = stream[pos : pos + size]
        pos += len(chunk)
        out += reader.feed(chunk)
        assert reader.kept <= 2 * 64 + 400 + 64  # never an oversize string
    assert out == want
    assert reader.oversize == oversize
    assert reader.kept == 0
