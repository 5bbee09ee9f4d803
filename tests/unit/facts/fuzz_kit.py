"""Hypothesis strategies for what the event stream can deliver, and the check that state
stays bounded: shared by the unit fuzz harnesses and the integration one."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from hypothesis import strategies as st

from sentinel.facts.celery_events import KNOWN_TYPES, MAX_FREQ, MIN_FREQ
from sentinel.facts.store import FactStore
from tests.helpers import T0

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
