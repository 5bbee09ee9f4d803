"""The tap, the bounded hand-off and the rolling segments."""

from __future__ import annotations

from pathlib import Path

import orjson

from sentinel.clock import FakeClock
from sentinel.facts.store import FactStore
from sentinel.record import format as fmt
from sentinel.record.recorder import (
    FileSink,
    Recorder,
    RollingSink,
    Tap,
    apply,
    segment_name,
    segment_start,
)
from sentinel.record.size import parse_size

T0 = 1_767_225_600.0
BEAT = {"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 1, "processed": 3}


def test_tap_forwards_every_write_and_records_it(tmp_path):
    store = FactStore()
    clock = FakeClock(T0)
    recorder = Recorder(FileSink(tmp_path / "r.rec", {"started_at": T0}, None), clock)
    tap = Tap(store, recorder)
    tap.apply_events([dict(BEAT, timestamp=T0)], T0)
    tap.set_inspect({"w1"}, T0, 35.0, {"w1": ["celery"]}, {"w1": {"pid": 1}}, {"w1": 1}, T0 + 1)
    tap.set_queue_depths({"celery": (7, 1)}, {"other": "gone"}, T0 + 2)
    tap.probe_ok("events", T0 + 3)
    tap.probe_failed("queues", "refused", T0 + 4)
    tap.stream_restored(T0 + 4, T0 + 5)
    tap.count_malformed(2)
    tap.count_dropped("oversize", 1)
    assert tap.known_queues(("celery",)) == ["celery"]  # reads go to the store
    assert store.workers["w1"].queues == ("celery",)
    recorder.stop()

    replayed = FactStore()
    for record in fmt.Reader(tmp_path / "r.rec"):
        apply(replayed, record)
    assert replayed.workers["w1"].heartbeat_at == store.workers["w1"].heartbeat_at
    assert replayed.workers["w1"].ping_at == T0
    assert replayed.workers["w1"].stats == {"pid": 1}
    assert replayed.queues["celery"].depth == 7 and replayed.queues["other"].error == "gone"
    assert replayed.probes["queues"].error == "refused"
    assert replayed.drops.malformed == 2 and replayed.drops.oversize == 1
    assert replayed.events_by_type == store.events_by_type


def test_a_full_hand_off_drops_and_counts_and_never_blocks(tmp_path):
    clock = FakeClock(T0)
    recorder = Recorder(FileSink(tmp_path / "r.rec", {}, None), clock, max_pending=10)
    for _ in range(4):
        recorder.put((fmt.EVENTS, T0, [BEAT] * 3), 3)  # no writer running: it fills up
    assert recorder.dropped == 3
    recorder.flush()
    assert recorder.records == 3
    recorder.put((fmt.EVENTS, T0, [BEAT] * 3), 3)  # room again once written
    assert recorder.dropped == 3
    recorder.stop()


def test_file_sink_reports_full_at_max_size(tmp_path):
    clock = FakeClock(T0)
    sink = FileSink(tmp_path / "r.rec", {}, max_size=2000)
    recorder = Recorder(sink, clock)
    while not sink.full():
        recorder.put((fmt.PROBE_OK, clock.advance(1), "x" * 500))
        recorder.flush()
    assert sink.size >= 2000
    recorder.stop()


def test_segment_names_sort_by_time_and_read_back():
    a, b = segment_name(T0), segment_name(T0 + 0.5)
    assert a < b
    assert segment_start(Path(a)) == T0
    assert segment_start(Path(b)) == T0 + 0.5


def test_rolling_rotates_by_time_and_deletes_past_keep(tmp_path):
    clock = FakeClock(T0)
    sink = RollingSink(tmp_path, {}, keep=3600.0, max_size=1 << 30, segment=600.0)
    for minute in range(0, 181, 5):  # three hours, a frame every 5 minutes
        clock.set(T0 + minute * 60)
        sink.write([fmt.encode("ok", clock.now(), "events")], clock.now())
    sink.close()
    starts = [segment_start(p) for p in fmt.segments(tmp_path)]
    # Every segment still there ended within the last hour; segments are 10 minutes long.
    assert all(s is not None and s >= clock.now() - 3600 - 600 for s in starts)
    assert 6 <= len(starts) <= 8
    assert sink.deleted > 0
    records = [r for p in fmt.segments(tmp_path) for r in fmt.Reader(p)]
    assert records[-1].t == clock.now()


def test_rolling_stays_within_max_size_plus_one_segment(tmp_path):
    clock = FakeClock(T0)
    max_size = 200_000
    sink = RollingSink(tmp_path, {}, keep=86_400.0, max_size=max_size, segment_size=20_000)
    payload = "x" * 5000  # incompressible enough: random-ish below
    import random

    rng = random.Random(1)
    for i in range(400):
        clock.advance(1)
        noise = "".join(rng.choice("abcdefghijklmnop") for _ in range(3000))
        sink.write([fmt.encode("ok", clock.now(), payload[:10] + noise)], clock.now())
        total = sum(p.stat().st_size for p in fmt.segments(tmp_path))
        assert total <= max_size + 20_000 + 5000, (i, total)
    sink.close()
    assert sink.deleted > 0
    assert len(list(fmt.segments(tmp_path))) >= 2


def test_sizes():
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("500MiB") == 500 << 20
    assert parse_size("64KiB") == 64 << 10
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("1G") == 1 << 30
    assert parse_size(4096) == 4096
    for bad in ("lots", "-1", True, 0):
        try:
            parse_size(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_message_bodies_are_recorded_as_they_came(tmp_path):
    """The Redis fast path hands the tap raw JSON bodies (an event, or Celery's list)."""
    store = FactStore()
    clock = FakeClock(T0)
    recorder = Recorder(FileSink(tmp_path / "r.rec", {}, None), clock)
    tap = Tap(store, recorder)
    one = dict(BEAT, timestamp=T0)
    two = [dict(BEAT, hostname="w2", timestamp=T0), 7]
    bodies = [orjson.dumps(one), b"[\n" + orjson.dumps(two[0]) + b", 7]", b'{"x": NaN}']
    tap.apply_event_bodies([one, two[0]], bodies, T0)
    recorder.stop()
    (record,) = list(fmt.Reader(tmp_path / "r.rec"))
    assert record.kind == fmt.BODIES
    replayed = FactStore()
    apply(replayed, record)
    assert set(replayed.workers) == {"w1", "w2"} == set(store.workers)


def test_the_daemon_keeps_a_rolling_recording_from_its_config(tmp_path):
    from sentinel.app import Sentinel
    from sentinel.config import validate

    config = validate(
        {
            "celery": {"broker_url": "memory://"},
            "record": {"path": str(tmp_path / "rec"), "keep": "2h", "max_size": "10MiB"},
            "storage": {"path": str(tmp_path / "sentinel.db")},
        }
    )
    assert config.record is not None
    assert (config.record.keep, config.record.max_size) == (7200.0, 10 << 20)
    clock = FakeClock(T0)
    assert Sentinel(config, clock, persist=False).recorder is None  # eval records nothing
    s = Sentinel(config, clock)
    assert s.recorder is not None and isinstance(s.events.store, Tap)
    s.events.store.apply_events([dict(BEAT, timestamp=T0)], T0)  # as the collector would
    assert "w1" in s.store.workers
    s.recorder.stop()
    assert s.db is not None
    s.db.close()
    (segment,) = fmt.segments(tmp_path / "rec")
    assert [r.kind for r in fmt.Reader(segment)] == [fmt.EVENTS]


def test_record_section_is_strict():
    import pytest

    from sentinel.config import validate
    from sentinel.config.loader import ConfigError

    for bad in ({"path": "x", "kepe": "1h"}, {"path": "x", "max_size": "lots"}, {}):
        with pytest.raises((ConfigError, ValueError)):
            validate({"record": bad})


def test_recording_metrics(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    from sentinel.record.metrics import RecordingCollector

    clock = FakeClock(T0)
    recorder = Recorder(FileSink(tmp_path / "r.rec", {}, None), clock, max_pending=1)
    recorder.put((fmt.EVENTS, T0, [BEAT] * 2), 2)
    recorder.put((fmt.PROBE_OK, T0, "events"))
    recorder.flush()
    registry = CollectorRegistry()
    registry.register(RecordingCollector(recorder))
    text = generate_latest(registry).decode()
    assert "sentinel_recording_records_total 1.0" in text
    assert "sentinel_recording_dropped_total 2.0" in text
    assert "sentinel_recording_bytes " in text
    recorder.stop()
