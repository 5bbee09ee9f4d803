"""The recording file: round trip, version check, truncation and corruption."""

from __future__ import annotations

import struct
import zlib

import pytest

from sentinel.record import format as fmt


def write(path, frames):
    w = fmt.Writer(path, {"started_at": 100.0})
    for frame in frames:
        w.write([fmt.encode(*r) for r in frame])
    w.close()
    return w


def test_round_trip_keeps_every_record_in_order(tmp_path):
    path = tmp_path / "r.rec"
    frames = [
        [("ev", 101.0, [{"type": "task-failed", "uuid": "u1"}]), ("ok", 101.5, "events")],
        [("qd", 102.0, {"celery": [5, 1]}, {}), ("fail", 103.0, "inspect", "boom")],
    ]
    write(path, frames)
    reader = fmt.Reader(path)
    assert reader.header["version"] == fmt.VERSION
    assert reader.started_at == 100.0
    records = list(reader)
    assert [(r.kind, r.t, r.args) for r in records] == [
        ("ev", 101.0, ([{"type": "task-failed", "uuid": "u1"}],)),
        ("ok", 101.5, ("events",)),
        ("qd", 102.0, ({"celery": [5, 1]}, {})),
        ("fail", 103.0, ("inspect", "boom")),
    ]


def test_frames_are_compressed(tmp_path):
    path = tmp_path / "r.rec"
    event = {"type": "task-succeeded", "uuid": "x" * 36, "hostname": "celery@w1", "runtime": 0.1}
    w = write(path, [[("ev", 100.0 + i, [event]) for i in range(1000)]])
    raw = sum(len(fmt.encode("ev", 100.0 + i, [event])) for i in range(1000))
    assert w.size < raw / 5


def test_not_a_recording(tmp_path):
    path = tmp_path / "r.rec"
    path.write_bytes(b"hello world")
    with pytest.raises(fmt.RecordingError, match="not a sentinel recording"):
        fmt.Reader(path)


def test_another_version_is_refused_by_name(tmp_path):
    path = tmp_path / "r.rec"
    write(path, [])
    data = bytearray(path.read_bytes())
    data[len(fmt.MAGIC)] = fmt.VERSION + 1
    path.write_bytes(bytes(data))
    refused = f"version {fmt.VERSION + 1}.*reads versions 1, 2$"
    with pytest.raises(fmt.RecordingError, match=refused):
        fmt.Reader(path)


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_truncated_file_yields_what_came_before_then_says_where(tmp_path, cut):
    path = tmp_path / "r.rec"
    write(path, [[("ok", 101.0, "events")], [("ok", 102.0, "events"), ("ok", 103.0, "events")]])
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    reader = fmt.Reader(path)
    got = []
    with pytest.raises(fmt.RecordingError, match=r"bad record at byte \d+: truncated") as e:
        got.extend(iter(reader))
    assert [r.t for r in got] == [101.0]
    assert "1 record(s) read before it" in str(e.value)
    assert "the last at" in str(e.value)


def test_a_corrupt_byte_stops_at_its_frame(tmp_path):
    path = tmp_path / "r.rec"
    write(path, [[("ok", 101.0, "a")], [("ok", 102.0, "b")], [("ok", 103.0, "c")]])
    data = bytearray(path.read_bytes())
    # The second frame's payload: after the header and the first frame.
    header_len = len(fmt.MAGIC) + 5 + struct.unpack(">I", data[len(fmt.MAGIC) + 1 :][:4])[0]
    first_len = struct.unpack(">I", data[header_len + 1 : header_len + 5])[0]
    second = header_len + 9 + first_len
    data[second + 12] ^= 0xFF
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(fmt.RecordingError, match=f"byte {second}: checksum mismatch"):
        got.extend(fmt.Reader(path))
    assert [r.args for r in got] == [("a",)]


def test_a_version_1_file_of_zlib_frames_is_still_read(tmp_path):
    path = tmp_path / "v1.rec"
    line = fmt.encode("ok", 2.0, "events")
    payload = zlib.compress(struct.pack(">I", len(line)) + line, 1)
    body = b'{"format": "sentinel-recording", "version": 1, "started_at": 1.0}'
    path.write_bytes(
        fmt.MAGIC
        + struct.pack(">BI", 1, len(body))
        + body
        + struct.pack(">cII", b"F", len(payload), zlib.crc32(payload))
        + payload
    )
    reader = fmt.Reader(path)
    assert reader.version == 1
    assert [(r.kind, r.t, r.args) for r in reader] == [("ok", 2.0, ("events",))]


def test_a_frame_that_inflates_past_the_bound_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(fmt, "MAX_INFLATED", 1000)
    path = tmp_path / "r.rec"
    w = fmt.Writer(path, {"started_at": 1.0})
    w.write([fmt.encode("ok", 2.0, "x")])
    w.write([fmt.encode("ok", 3.0, "y" * 2000)])  # compresses to a few bytes
    w.close()
    got = []
    with pytest.raises(fmt.RecordingError, match="frame inflates past 1000 bytes"):
        got.extend(fmt.Reader(path))
    assert [r.t for r in got] == [2.0]


def test_garbage_inside_a_good_frame_is_a_bad_record(tmp_path):
    path = tmp_path / "r.rec"
    w = fmt.Writer(path, {"started_at": 1.0})
    w.write([fmt.encode("ok", 2.0, "x"), b'["nope", 3.0]', fmt.encode("ok", 4.0, "y")])
    w.close()
    got = []
    with pytest.raises(fmt.RecordingError, match="record 2 of its frame is not a record"):
        got.extend(fmt.Reader(path))
    assert len(got) == 1


def test_segments_of_a_folder_in_name_order(tmp_path):
    for name in ("sentinel-20260101T010000.000Z.rec", "sentinel-20260101T000000.000Z.rec"):
        write(tmp_path / name, [])
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in fmt.segments(tmp_path)] == [
        "sentinel-20260101T000000.000Z.rec",
        "sentinel-20260101T010000.000Z.rec",
    ]
    assert fmt.segments(tmp_path / "one.rec") == [tmp_path / "one.rec"]
