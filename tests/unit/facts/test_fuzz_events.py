"""Property-based harnesses over what the event stream can deliver (`make fuzz` runs them long).

Over event dicts, message envelopes and PUB/SUB byte streams: no exception escapes, every event
is accepted or dropped under exactly one reason (accepted + dropped == seen), and state stays
within its caps with only finite, in-range numbers in it.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.clock import FakeClock
from sentinel.collectors.events import EventCollector
from sentinel.collectors.redis_pubsub import PubSubReader
from sentinel.facts.celery_events import KNOWN_TYPES, MAX_FREQ, MIN_FREQ
from sentinel.facts.store import FactStore
from tests.helpers import T0

# `make fuzz` runs 20,000 examples each: minutes, past the suite's 300 s per-test timeout.
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(3600)]


# Numbers as JSON (and kombu's json, and a hostile publisher) can spell them.
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=T0 - 10, max_value=T0 + 10),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "-0", "1.5", "x", ""]),
    st.booleans(),
    st.none(),
)
junk = st.one_of(
    numbers,
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
FIELDS = {
    "uuid": st.one_of(st.sampled_from(["u1", "u2", "u3", "u4"]), junk),
    "name": st.one_of(st.sampled_from(["app.a", "app.b", "app.c"]), st.text(max_size=600), junk),
    "hostname": st.one_of(st.sampled_from(["w1@h", "w2@h"]), st.text(max_size=600), junk),
    "timestamp": numbers,
    "runtime": numbers,
    "freq": numbers,
    "active": numbers,
    "processed": numbers,
    "sw_ident": junk,
}


@st.composite
def event(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:  # now and then not an event at all
        return draw(junk)
    kind = draw(st.one_of(st.sampled_from(KNOWN_TYPES), st.text(max_size=12), junk))
    fields = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True))
    out: dict[str, Any] = {"type": kind}
    for f in fields:
        out[f] = draw(FIELDS[f])
    return out


events = st.lists(event(), max_size=40)


def check_state(store: FactStore, seen: int) -> None:
    drops = store.drops
    assert drops.error == 0, "an event raised something unexpected"
    assert sum(store.events_by_type.values()) + drops.per_event() == seen
    assert len(store.tasks) <= store.max_task_names
    assert len(store.workers) <= store.max_workers
    assert len(store.inflight) <= store.max_inflight
    for worker in store.workers.values():
        assert MIN_FREQ <= worker.freq <= MAX_FREQ or worker.freq == 2.0
        assert 0 <= worker.active <= 1 << 32 and 0 <= worker.processed <= 1 << 32
    for metrics in store.task_metrics.values():
        for hist in metrics.histograms:
            assert all(math.isfinite(x) for x in hist)
    assert len(store.task_metrics) <= store.label_sets <= store.max_metric_label_sets
    for series in store.tasks.values():
        assert all(math.isfinite(x) for x in series.ring.maxes)
        for sketch in series.ring.tail or ():
            assert sketch is None or (math.isfinite(sketch.sum) and math.isfinite(sketch.max))


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


def envelope(body: Any, *, b64: bool, content_type: str, headers: dict[str, Any]) -> bytes:
    raw = json.dumps(body).encode()  # the stdlib: may write NaN / Infinity, as kombu does
    return json.dumps(
        {
            "body": base64.b64encode(raw).decode() if b64 else raw.decode(),
            "content-type": content_type,
            "content-encoding": "utf-8",
            "headers": headers,
            "properties": {"body_encoding": "base64"} if b64 else {},
        }
    ).encode()


@st.composite
def message(draw: st.DrawFn) -> tuple[bytes, int]:
    """(payload, how many events or messages it counts as)."""
    choice = draw(st.integers(0, 5))
    if choice == 0:  # bytes that are no envelope
        return draw(st.binary(max_size=64)), 1
    if choice == 1:  # an envelope Celery would not send: refused, one message
        ct = draw(st.sampled_from(["application/x-python-serialize", "application/x-yaml", ""]))
        headers = draw(st.sampled_from([{}, {"compression": "application/x-bz2"}]))
        if not headers and ct == "":
            ct = "text/plain"
        return envelope({"type": "task-sent"}, b64=True, content_type=ct, headers=headers), 1
    body = draw(st.one_of(event(), st.lists(event(), max_size=10)))
    b64 = draw(st.booleans())
    payload = envelope(body, b64=b64, content_type="application/json", headers={})
    return payload, len(body) if isinstance(body, list) else 1


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
