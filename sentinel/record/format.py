"""The recording file: a versioned header, then append-only, independently compressed frames.

    file   = MAGIC VERSION(u8) header_len(u32) header(JSON) frame*
    frame  = b"F" payload_len(u32) crc32(u32) zstd((record_len(u32) record)*)

Version 2 compresses frames with zstd (version 1, still read, with zlib): at level 1 it costs
the writer thread ~0.5 CPU-us per event where zlib's fastest level cost ~1.3, and writes ~35%
fewer bytes (bench/README.md, "ingest.py --record").
    record = JSON [kind, t, arg...]  (t: when sentinel received it, seconds since the epoch)

An "eb" record holds event message bodies as they came off the wire (JSON text, spliced in
unparsed: re-encoding decoded events would cost the writer thread GIL time ingest needs).

Frames are compressed one by one, so a file cut short by a crash or a bad byte on disk loses
only the frame it hits: the reader yields every record before it and then raises
RecordingError naming the byte offset and what was wrong. Nothing is ever rewritten, so a
reader may follow a file that is still being written.
"""

from __future__ import annotations

import binascii
import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

MAGIC = b"SNTLREC"
VERSION = 2
READS = (1, 2)  # 1: zlib frames, 2: zstd frames
_HEAD = struct.Struct(">BI")  # version, header length
_FRAME = struct.Struct(">cII")  # marker, payload length, crc32 of the payload
MAX_HEADER = 1 << 20
MAX_FRAME = 64 << 20  # compressed bytes in one frame: past it the length itself is corrupt
MAX_INFLATED = 256 << 20  # inflated bytes of one frame: a bomb stops here, not in memory

# Record kinds: each is one write the collectors make to the fact store (recorder.Tap).
EVENTS = "ev"  # [t, [event dict, ...]]            apply_events(events, t)
BODIES = "eb"  # [t, body, ...]: each an event or a list of them, as in the message
INSPECT = "in"  # [t, pings, pinged_at, ttl, active_queues, stats, active(, running)]
QUEUES = "qd"  # [t, {queue: [depth, consumers]}, {queue: error}]
PROBE_OK = "ok"  # [t, source]
PROBE_FAILED = "fail"  # [t, source, error]
RESTORED = "restored"  # [t, lost_at]
MALFORMED = "malformed"  # [t, n]
DROPPED = "dropped"  # [t, reason, n]
KINDS = frozenset(
    {EVENTS, BODIES, INSPECT, QUEUES, PROBE_OK, PROBE_FAILED, RESTORED, MALFORMED, DROPPED}
)


class RecordingError(Exception):
    """The file is not a recording, of another version, or bad from some record on."""


@dataclass(frozen=True, slots=True)
class Record:
    kind: str
    t: float
    args: tuple[Any, ...]


_LEN = struct.Struct(">I")


def body_bytes(body: Any) -> bytes:
    """A message body as JSON text: bytes (as the collector decoded it), a str, or (the
    envelope's body, base64?)."""
    if type(body) is bytes:
        return body
    if type(body) is tuple:
        raw, base64 = body
        return binascii.a2b_base64(raw) if base64 else body_bytes(raw)
    return str(body).encode()


def encode(kind: str, t: float, *args: Any) -> bytes:
    if kind == BODIES:  # JSON texts spliced in as they are
        return b'["eb",' + orjson.dumps(t) + b"," + b",".join(map(body_bytes, args)) + b"]"
    return orjson.dumps([kind, t, *args], option=orjson.OPT_NON_STR_KEYS)


def header_bytes(header: dict[str, Any]) -> bytes:
    body = orjson.dumps({"format": "sentinel-recording", "version": VERSION, **header})
    return MAGIC + _HEAD.pack(VERSION, len(body)) + body


# zstd level 1: the writer shares the machine (and the GIL) with ingest, which must not slow
# down by more than 10%; higher levels buy a few percent of bytes for twice the CPU.
LEVEL = 1


def frame_bytes(lines: list[bytes], compressor: zstandard.ZstdCompressor) -> bytes:
    pack = _LEN.pack
    payload: bytes = compressor.compress(b"".join(pack(len(line)) + line for line in lines))
    return _FRAME.pack(b"F", len(payload), zlib.crc32(payload)) + payload


def _inflate(version: int, payload: bytes) -> bytes | None:
    """A frame's records, or None past MAX_INFLATED (a bomb stops here, not in memory).
    Raises zlib.error / zstandard.ZstdError when the bytes do not decompress."""
    if version == 1:
        inflater = zlib.decompressobj()
        data = inflater.decompress(payload, MAX_INFLATED)
        return None if inflater.unconsumed_tail else data
    # A stream reader, not decompress(): a frame header's claimed size is never allocated.
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)) as reader:
        data = reader.read(MAX_INFLATED + 1)
    return None if len(data) > MAX_INFLATED else data


class Writer:
    """One recording file, appended frame by frame (each write is a whole frame)."""

    def __init__(self, path: str | Path, header: dict[str, Any], level: int = LEVEL) -> None:
        self.path = Path(path)
        self._compressor = zstandard.ZstdCompressor(level=level)
        self.started_at = float(header.get("started_at", 0.0))
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._file.write(header_bytes(header))
        self._file.flush()
        self.size = self._file.tell()
        self.records = 0

    def write(self, lines: list[bytes]) -> int:
        if not lines:
            return 0
        frame = frame_bytes(lines, self._compressor)
        self._file.write(frame)
        self._file.flush()
        self.size += len(frame)
        self.records += len(lines)
        return len(frame)

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read_header(f: BinaryIO, name: str = "recording") -> tuple[int, dict[str, Any]]:
    """The format version and the header of the file f is at the start of."""
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise RecordingError(f"{name}: not a sentinel recording (no {MAGIC.decode()} header)")
    head = f.read(_HEAD.size)
    if len(head) < _HEAD.size:
        raise RecordingError(f"{name}: truncated header")
    version, length = _HEAD.unpack(head)
    if version not in READS:
        raise RecordingError(
            f"{name}: recording format version {version}; this sentinel reads versions"
            f" {', '.join(map(str, READS))}"
        )
    if length > MAX_HEADER:
        raise RecordingError(f"{name}: header of {length} bytes (corrupt)")
    body = f.read(length)
    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RecordingError(f"{name}: unreadable header: {e}") from None
    if not isinstance(header, dict):
        raise RecordingError(f"{name}: unreadable header")
    return version, header


class Reader:
    """Records of one file in order; stops with RecordingError at the first bad one.

    `records` counts what was yielded and `last_t` its time, so the error can say how much
    of the file was good.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records = 0
        self.last_t: float | None = None
        with open(self.path, "rb") as f:
            self.version, self.header = read_header(f, str(self.path))
            self._start = f.tell()

    @property
    def started_at(self) -> float | None:
        value = self.header.get("started_at")
        return float(value) if isinstance(value, int | float) else None

    def _bad(self, offset: int, why: str) -> RecordingError:
        good = f"{self.records} record(s) read before it"
        if self.last_t is not None:
            from sentinel.model import rfc3339

            good += f", the last at {rfc3339(self.last_t)}"
        return RecordingError(f"{self.path}: bad record at byte {offset}: {why} ({good})")

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as f:
            f.seek(self._start)
            while True:
                offset = f.tell()
                head = f.read(_FRAME.size)
                if not head:
                    return
                if len(head) < _FRAME.size:
                    raise self._bad(offset, "truncated frame header (the file was cut short)")
                marker, length, crc = _FRAME.unpack(head)
                if marker != b"F" or length > MAX_FRAME:
                    raise self._bad(offset, "not a frame (corrupt bytes)")
                payload = f.read(length)
                if len(payload) < length:
                    raise self._bad(
                        offset, f"truncated frame: {len(payload)} of {length} bytes present"
                    )
                if zlib.crc32(payload) != crc:
                    raise self._bad(offset, "checksum mismatch (corrupt bytes)")
                try:
                    data = _inflate(self.version, payload)
                except (zlib.error, zstandard.ZstdError) as e:
                    raise self._bad(offset, f"cannot decompress: {e}") from None
                if data is None:
                    raise self._bad(offset, f"frame inflates past {MAX_INFLATED} bytes")
                pos, n, size = 0, 0, len(data)
                while pos < size:
                    n += 1
                    (length,) = _LEN.unpack_from(data, pos) if pos + 4 <= size else (size,)
                    line = data[pos + 4 : pos + 4 + length]
                    pos += 4 + length
                    record = _decode(line) if pos <= size else None
                    if record is None:
                        raise self._bad(offset, f"record {n} of its frame is not a record")
                    self.records += 1
                    self.last_t = record.t
                    yield record


def _decode(line: bytes) -> Record | None:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:  # NaN / Infinity in a body spliced in as kombu wrote it (see collectors.events)
            item = json.loads(line)
        except ValueError:
            return None
    if (
        not isinstance(item, list)
        or len(item) < 2
        or item[0] not in KINDS
        or not isinstance(item[1], int | float)
        or isinstance(item[1], bool)
    ):
        return None
    return Record(item[0], float(item[1]), tuple(item[2:]))


def segments(path: str | Path) -> list[Path]:
    """A recording path: one file, or a folder of rolling segments (in time order)."""
    p = Path(path)
    if p.is_dir():
        return sorted(p.glob("*.rec"))
    return [p]
