"""Hostile events: every impossible number is ignored before it touches state, every event is
accepted or dropped under one reason, and no message costs more than the stated bound."""

from __future__ import annotations

import base64
import bz2
import json
import logging
import math
import threading
import zlib
from typing import Any

import pytest

from sentinel.backoff import wait_to_reconnect
from sentinel.clock import FakeClock
from sentinel.collectors.events import EventCollector
from sentinel.collectors.redis_pubsub import PubSubReader
from sentinel.facts.celery_events import MAX_FREQ, MAX_ID, MAX_RUNTIME, MAX_SKEW, MIN_FREQ
from sentinel.facts.store import FactStore
from sentinel.facts.windows import COUNTERS, QUEUE_WAIT, RUNTIME, TOTAL
from sentinel.facts.workers import DEFAULT_FREQ
from sentinel.ratelog import RateLimitedLog
from tests.helpers import T0

HOST = "w1@host"
INF, NAN = math.inf, math.nan


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def accepted(store: FactStore) -> int:
    return sum(store.events_by_type.values())


def sketch_count(store: FactStore, measure: int, name: str = "app.add") -> int:
    return store.tasks[name].ring.sketch(measure, 600.0, T0 + 1).count


def counts(store: FactStore, name: str = "app.add") -> dict[str, int]:
    return dict(zip(COUNTERS, store.tasks[name].totals, strict=True))


def lifecycle(store: FactStore, *, started_ts: Any = T0 + 1, done: dict[str, Any]) -> None:
    store.apply_events(
        [
            ev("task-sent", uuid="u", name="app.add", timestamp=T0),
            ev("task-started", uuid="u", hostname=HOST, timestamp=started_ts),
            ev("task-succeeded", uuid="u", hostname=HOST, **done),
        ],
        T0 + 1,
    )


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "runtime", [INF, -INF, NAN, "inf", "nan", "-inf", 1.7e308, -0.5, MAX_RUNTIME * 2]
)
def test_an_impossible_runtime_is_ignored_and_the_task_still_counts(runtime: Any) -> None:
    store = FactStore()
    lifecycle(store, done={"timestamp": T0 + 3, "runtime": runtime})
    assert counts(store)["succeeded"] == 1
    assert store.drops.malformed == 0  # not counted twice (it used to be succeeded + malformed)
    assert store.ignored.runtime == 1
    assert store.events_by_type["task-succeeded"] == 1
    # the runtime falls back to started -> succeeded, as when a worker sends none
    assert store.tasks["app.add"].ring.sketch(RUNTIME, 600.0, T0 + 1).max == pytest.approx(2.0)


@pytest.mark.parametrize("runtime", [0.0, 0.25, MAX_RUNTIME])
def test_a_possible_runtime_is_used(runtime: float) -> None:
    store = FactStore()
    lifecycle(store, done={"timestamp": T0 + 3, "runtime": runtime})
    assert store.ignored.runtime == 0
    assert store.tasks["app.add"].ring.sketch(RUNTIME, 600.0, T0 + 1).max == pytest.approx(runtime)


@pytest.mark.parametrize(
    "ts", [INF, -INF, NAN, "inf", "nan", 1.7e308, -1.7e308, 0.0, 1.0, T0 + 1 + MAX_SKEW + 1]
)
def test_an_impossible_timestamp_is_ignored_and_the_event_still_counts(ts: Any) -> None:
    store = FactStore()
    lifecycle(store, started_ts=ts, done={"timestamp": ts})
    assert counts(store)["started"] == 1 and counts(store)["succeeded"] == 1
    assert store.ignored.timestamp == 2
    assert store.drops.malformed == 0
    # no latency can be measured from it; sketches and histograms stay finite
    assert sketch_count(store, QUEUE_WAIT) == 0
    assert sketch_count(store, RUNTIME) == 0
    assert sketch_count(store, TOTAL) == 0
    hists = [h for m in store.task_metrics.values() for h in m.histograms]
    assert hists and all(math.isfinite(x) for h in hists for x in h)


@pytest.mark.parametrize("ts", [T0 + 1 - MAX_SKEW, T0 + 1 + MAX_SKEW, T0 - 3600])
def test_a_timestamp_within_the_skew_is_used(ts: float) -> None:
    store = FactStore()
    lifecycle(store, done={"timestamp": ts})
    assert store.ignored.timestamp == 0
    assert sketch_count(store, TOTAL) == 1


@pytest.mark.parametrize(
    "freq", [INF, NAN, "inf", "nan", 1.7e308, -2.0, MIN_FREQ / 2, MAX_FREQ * 2, -INF]
)
def test_an_impossible_heartbeat_freq_is_ignored(freq: Any) -> None:
    store = FactStore()
    store.apply_event(ev("worker-heartbeat", hostname=HOST, freq=freq, active=0), T0)
    worker = store.workers[HOST]
    assert worker.freq == DEFAULT_FREQ  # not forever alive
    assert store.ignored.freq == 1
    assert worker.alive(T0 + 2 * DEFAULT_FREQ - 0.1)
    assert not worker.alive(T0 + 2 * DEFAULT_FREQ + 0.1)


def test_an_impossible_freq_keeps_the_freq_already_known() -> None:
    store = FactStore()
    store.apply_event(ev("worker-heartbeat", hostname=HOST, freq=10.0, active=0), T0)
    store.apply_event(ev("worker-heartbeat", hostname=HOST, freq="inf", active=0), T0 + 5)
    assert store.workers[HOST].freq == 10.0
    assert not store.workers[HOST].alive(T0 + 5 + 20.1)


@pytest.mark.parametrize("freq", [MIN_FREQ, 1.0, 2.0, 60.0, MAX_FREQ])
def test_a_possible_freq_is_used(freq: float) -> None:
    store = FactStore()
    store.apply_event(ev("worker-heartbeat", hostname=HOST, freq=freq, active=0), T0)
    assert store.workers[HOST].freq == freq
    assert store.ignored.freq == 0


@pytest.mark.parametrize("field", ["active", "processed"])
@pytest.mark.parametrize("value", [-1, 1 << 40, 10**30])
def test_impossible_worker_counts_are_ignored(field: str, value: int) -> None:
    store = FactStore()
    store.apply_event(ev("worker-heartbeat", hostname=HOST, freq=2.0, active=1, processed=5), T0)
    second = ev("worker-heartbeat", hostname=HOST, freq=2.0, active=1, processed=5)
    store.apply_event({**second, field: value}, T0 + 1)
    worker = store.workers[HOST]
    assert getattr(store.ignored, field) == 1
    assert 0 <= worker.active <= 1 and worker.processed == 5
    assert store.events_by_type["worker-heartbeat"] == 2


@pytest.mark.parametrize("field", ["active", "processed", "freq"])
def test_a_count_that_is_not_a_number_drops_the_heartbeat(field: str) -> None:
    store = FactStore()
    store.apply_events([{**ev("worker-heartbeat", hostname=HOST, freq=2.0), field: INF}], T0)
    if field == "freq":  # a float: read, then out of range
        assert store.events_by_type["worker-heartbeat"] == 1
    else:  # int(inf) overflows: an event that cannot be read is malformed
        assert store.drops.malformed == 1
        assert HOST not in store.workers


@pytest.mark.parametrize("key", ["uuid", "name", "hostname"])
def test_identifiers_longer_than_max_id_are_malformed(key: str) -> None:
    store = FactStore()
    event = ev("task-received", uuid="u", name="app.add", timestamp=T0, hostname=HOST)
    if key == "hostname":
        event = ev("worker-heartbeat", hostname=HOST, freq=2.0)
    event[key] = "x" * (MAX_ID + 1)
    store.apply_events([event], T0)
    assert store.drops.malformed == 1
    assert accepted(store) == 0
    assert not store.tasks and not store.workers and not store.inflight


# -- accounting ---------------------------------------------------------------------------


def test_each_event_is_accepted_or_dropped_under_exactly_one_reason() -> None:
    store = FactStore(max_task_names=1, max_workers=1)
    events: list[Any] = [
        ev("task-sent", uuid="a", name="app.add", timestamp=T0),  # accepted
        ev("task-sent", uuid="b", name="app.other", timestamp=T0),  # task_series_cap
        ev("task-succeeded", uuid="ghost", timestamp=T0),  # unknown_task
        ev("task-revoked", uuid="ghost2", timestamp=T0),  # unknown_task (no name, unknown)
        ev("task-started", uuid="a", hostname="w2@h", timestamp=T0),  # accepted
        ev("worker-heartbeat", hostname="w1@h", freq=2.0),  # accepted
        ev("worker-heartbeat", hostname="w2@h", freq=2.0),  # worker_cap
        ev("task-sent", uuid="c", name="app.add", timestamp="yesterday"),  # malformed
        ev("custom-thing"),  # accepted as "other"
        "not even a dict",  # malformed
    ]
    store.apply_events(events, T0)
    assert accepted(store) == 4
    assert store.drops.per_event() == 6
    assert accepted(store) + store.drops.per_event() == len(events)
    assert (store.drops.unknown_task, store.drops.malformed) == (2, 2)
    assert (store.drops.task_names, store.drops.workers) == (1, 1)


def test_an_unexpected_exception_costs_one_event_and_is_logged_at_a_bounded_rate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = FactStore()
    real = store._apply

    def flaky(event: dict[str, Any], now: float) -> None:
        if event.get("boom"):
            raise ZeroDivisionError("a bug")
        real(event, now)

    monkeypatch.setattr(store, "_apply", flaky)
    good = ev("worker-heartbeat", hostname=HOST, freq=2.0)
    with caplog.at_level(logging.ERROR, "sentinel.events"):
        store.apply_events([good, *[ev("task-sent", boom=True)] * 50, good], T0)
        store.apply_events([ev("task-sent", boom=True)], T0 + 11)
    assert store.drops.error == 51
    assert store.events_by_type["worker-heartbeat"] == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # once, then once more after the quiet interval
    assert "49 more like it" in errors[1].getMessage()
    assert errors[0].exc_info is not None


# -- messages -----------------------------------------------------------------------------


def envelope(body: bytes, **headers: Any) -> bytes:
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": headers,
            "properties": {"body_encoding": "base64"},
        }
    ).encode()


def collector(store: FactStore) -> EventCollector:
    return EventCollector(app=None, store=store, clock=FakeClock(T0))  # type: ignore[arg-type]


HEARTBEAT = json.dumps(ev("worker-heartbeat", hostname=HOST, freq=2.0, active=0)).encode()


@pytest.mark.parametrize(
    "payload",
    [
        envelope(bz2.compress(HEARTBEAT), compression="application/x-bz2"),
        envelope(zlib.compress(HEARTBEAT), compression="application/x-gzip"),
        json.dumps(
            {"body": "x", "content-type": "application/x-python-serialize", "headers": {}}
        ).encode(),
        json.dumps({"body": "---", "content-type": "application/x-yaml", "headers": {}}).encode(),
    ],
    ids=["bz2", "zlib", "pickle", "yaml"],
)
def test_compressed_and_non_json_messages_are_refused_unread(payload: bytes) -> None:
    store = FactStore()
    collector(store)._apply_payloads([payload, envelope(HEARTBEAT)])
    assert store.drops.refused == 1
    assert store.events_by_type["worker-heartbeat"] == 1  # the next message is unaffected


def test_kombu_json_infinity_is_read_and_range_checked() -> None:
    # kombu's json.dumps writes Infinity/NaN, which orjson refuses: a whole batch would be lost
    body = json.dumps(
        [
            ev("task-sent", uuid="u", name="app.add", timestamp=T0),
            ev("task-succeeded", uuid="u", timestamp=T0, runtime=INF),
        ]
    ).encode()
    assert b"Infinity" in body
    store = FactStore()
    collector(store)._apply_payloads([envelope(body)])
    assert counts(store)["succeeded"] == 1
    assert store.ignored.runtime == 1


class Message:
    def __init__(self, body: bytes, content_type: str = "application/json", **headers: Any):
        self.body, self.content_type, self.headers = body, content_type, headers


def test_kombu_path_refuses_compressed_non_json_and_oversize_bodies() -> None:
    from sentinel.collectors.redis_pubsub import MAX_MESSAGE

    store = FactStore()
    c = collector(store)
    c._on_message(Message(bz2.compress(HEARTBEAT), compression="application/x-bz2"))
    c._on_message(Message(b"\x80\x04K\x01.", content_type="application/x-python-serialize"))
    c._on_message(Message(b"[" + b"1," * MAX_MESSAGE + b"1]"))
    c._on_message(Message(b"{broken"))
    c._on_message(Message(HEARTBEAT))
    assert (store.drops.refused, store.drops.oversize, store.drops.malformed) == (2, 1, 1)
    assert store.events_by_type["worker-heartbeat"] == 1


# -- PUB/SUB frames -----------------------------------------------------------------------


def bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def pmessage(data: bytes, channel: bytes = b"/0.celeryev/task.multi") -> bytes:
    return b"*4\r\n" + bulk(b"pmessage") + bulk(b"/0.celeryev/*") + bulk(channel) + bulk(data)


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
@pytest.mark.parametrize("where", ["payload", "channel"])
def test_a_frame_over_the_limit_is_skipped_without_being_kept(chunk: int, where: str) -> None:
    big = b"x" * 5000
    frame = pmessage(b"small") + (
        pmessage(big) if where == "payload" else pmessage(b"data", channel=big)
    )
    stream = frame + pmessage(b"after") + pmessage(b"end")
    reader = PubSubReader(limit=1000)
    out: list[bytes] = []
    most = 0
    for i in range(0, len(stream), chunk):
        out += reader.feed(stream[i : i + chunk])
        most = max(most, reader.kept)
    assert out == [b"small", b"after", b"end"]
    assert reader.oversize == 1
    assert most <= 2 * 1000 + chunk  # never the 5000-byte string
    assert reader.kept == 0


def test_a_frame_at_the_limit_is_read() -> None:
    reader = PubSubReader(limit=13)  # the pattern, /0.celeryev/*, is 13 bytes too
    assert reader.feed(pmessage(b"0123456789abc", channel=b"c")) == [b"0123456789abc"]
    assert reader.oversize == 0


# -- reconnecting -------------------------------------------------------------------------


class FakeWait:
    """A stop event whose wait() advances a fake monotonic clock instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout: float) -> bool:
        self.now += timeout
        return self.stopped


def reconnect_wait(delay: float, up_at: float | None, fast: float = 5.0) -> float:
    fake = FakeWait()

    def answers() -> bool:
        return up_at is not None and fake.now >= up_at

    return wait_to_reconnect(
        fake,  # type: ignore[arg-type]
        delay,
        answers,
        fast=fast,
        poll=1.0,
        monotonic=lambda: fake.now,
    )


def test_the_wait_ends_within_a_poll_of_the_broker_answering_again() -> None:
    assert reconnect_wait(60.0, up_at=12.5) == pytest.approx(13.0)


def test_the_wait_is_the_full_backoff_while_the_broker_is_silent() -> None:
    assert reconnect_wait(30.0, up_at=None) == pytest.approx(30.0)


def test_while_the_broker_answers_the_wait_is_at_most_the_fast_cap() -> None:
    assert reconnect_wait(60.0, up_at=0.0) == pytest.approx(5.0)
    assert reconnect_wait(2.0, up_at=0.0) == pytest.approx(2.0)


def test_without_a_way_to_ask_the_wait_is_plain() -> None:
    stop = threading.Event()
    stop.set()  # returns at once; what matters is that answers() None is not polled
    assert wait_to_reconnect(stop, 60.0, lambda: None) < 1.0


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("sentinel.test.ratelog")
    limited = RateLimitedLog(logger, interval=10.0)
    with caplog.at_level(logging.WARNING, logger.name):
        said = [limited.warning(T0 + t, "k", "bad %s", t) for t in (0, 1, 2, 9.9, 10, 10.5)]
        limited.warning(T0, "other", "another key")
    assert said == [True, False, False, False, True, False]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "bad 0",
        "bad 10 (3 more like it in the last 10s not logged)",
        "another key",
    ]
