"""The tap and the writer: what the collectors write to the fact store, to a recording file.

The tap sits between the collectors and the fact store (the collectors' one door to state),
so a recording holds exactly what the store was told, with the time it was told: replaying
those writes rebuilds the same facts. The collector's thread only appends to a bounded
hand-off (one lock, one append per event batch); serializing and compressing happen on the
writer thread. A full hand-off drops the batch and counts it: ingest never waits for disk.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sentinel import __version__
from sentinel.clock import Clock
from sentinel.facts.store import FactStore
from sentinel.record import format as fmt

log = logging.getLogger("sentinel.record")

MAX_PENDING = 50_000  # events (or other records) waiting for the writer: the memory bound
FRAME_BYTES = 256 << 10  # uncompressed bytes per frame: compresses well, loses little on a crash
FLUSH_EVERY = 2.0  # seconds at most between frames while records arrive
POLL = 0.1  # the writer's sleep when idle: no wake-up signal on the hot path


class Sink:
    """Where frames go: a single file, or rolling segments."""

    size: int  # bytes written in total, still on disk

    def write(self, lines: list[bytes], now: float) -> None: ...

    def full(self) -> bool:
        return False

    def close(self) -> None: ...


class FileSink(Sink):
    """One file, bounded by max_size (the recording ends there)."""

    def __init__(self, path: str | Path, header: dict[str, Any], max_size: int | None) -> None:
        self.writer = fmt.Writer(path, header)
        self.max_size = max_size
        self.size = self.writer.size

    def write(self, lines: list[bytes], now: float) -> None:
        self.writer.write(lines)
        self.size = self.writer.size

    def full(self) -> bool:
        return self.max_size is not None and self.size >= self.max_size

    def close(self) -> None:
        self.writer.close()


def segment_name(start: float) -> str:
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%S")
    return f"sentinel-{stamp}.{int(start * 1000) % 1000:03d}Z.rec"


def segment_start(path: Path) -> float | None:
    try:
        stamp = path.name.removeprefix("sentinel-").removesuffix("Z.rec")
        day, _, ms = stamp.partition(".")
        return datetime.strptime(day, "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp() + (
            int(ms) / 1000
        )
    except ValueError:
        return None


class RollingSink(Sink):
    """Segment files in a folder: a new one every `segment` seconds or `segment_size` bytes;
    segments that ended more than `keep` ago, and the oldest past `max_size` in total, are
    deleted. The segment being written is never deleted, so the bound is max_size plus one
    segment (max_size / 8 by default)."""

    def __init__(
        self,
        folder: str | Path,
        header: dict[str, Any],
        *,
        keep: float,
        max_size: int,
        segment: float | None = None,
        segment_size: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.header = header
        self.keep = keep
        self.max_size = max_size
        self.segment = segment if segment is not None else min(3600.0, max(60.0, keep / 24))
        self.segment_size = segment_size or max(1 << 20, max_size // 8)
        self.current: fmt.Writer | None = None
        self.deleted = 0
        self.size = 0

    def _open(self, now: float) -> fmt.Writer:
        path = self.folder / segment_name(now)
        while path.exists():  # two segments in one millisecond: never overwrite
            now += 0.001
            path = self.folder / segment_name(now)
        return fmt.Writer(path, {**self.header, "started_at": now})

    def write(self, lines: list[bytes], now: float) -> None:
        current = self.current
        if current is not None and (
            now - current.started_at >= self.segment or current.size >= self.segment_size
        ):
            current.close()
            current = None
        if current is None:
            current = self.current = self._open(now)
            self.prune(now)
        current.write(lines)
        self.size = self._total()

    def _total(self) -> int:
        total = 0
        for path in fmt.segments(self.folder):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def prune(self, now: float) -> None:
        """Delete what is past keep or max_size: oldest first, never the current segment."""
        files = [p for p in fmt.segments(self.folder) if segment_start(p) is not None]
        current = self.current.path if self.current is not None else None
        sizes = {}
        for p in files:
            try:
                sizes[p] = p.stat().st_size
            except FileNotFoundError:
                continue
        files = [p for p in files if p in sizes]
        total = sum(sizes.values())
        for i, path in enumerate(files):
            if path == current:
                break
            # A segment ends where the next one starts.
            ends = segment_start(files[i + 1]) if i + 1 < len(files) else now
            if total > self.max_size or (ends is not None and ends < now - self.keep):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                total -= sizes[path]
                self.deleted += 1
        self.size = total

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def header(clock: Clock, **extra: Any) -> dict[str, Any]:
    return {
        "started_at": clock.now(),
        "sentinel": __version__,
        "host": socket.gethostname(),
        **extra,
    }


class Recorder:
    """A bounded hand-off and the thread that writes it to a Sink."""

    def __init__(
        self,
        sink: Sink,
        clock: Clock,
        *,
        max_pending: int = MAX_PENDING,
        frame_bytes: int = FRAME_BYTES,
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.max_pending = max_pending
        self.frame_bytes = frame_bytes
        self.flush_every = flush_every
        self.records = 0  # records written
        self.dropped = 0  # events (or records) dropped because the hand-off was full
        self.errors = 0  # frames lost to a write error (a full disk): counted, logged
        self.on_full: Callable[[], None] | None = None
        self._items: deque[tuple[Any, ...]] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the hot path ----------------------------------------------------------------------

    def put(self, item: tuple[Any, ...], weight: int = 1) -> None:
        with self._lock:
            if self._pending + weight > self.max_pending:
                self.dropped += weight
                return
            self._pending += weight
            self._items.append(item)

    # -- the writer ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sentinel-record", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()
        self.sink.close()

    def _take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._pending = 0
        return items

    def _run(self) -> None:
        lines: list[bytes] = []
        size = 0
        since = time.monotonic()
        while True:
            stopping = self._stop.wait(POLL)
            for item in self._take():
                try:
                    line = fmt.encode(*item)
                except (TypeError, ValueError):  # a value JSON cannot hold: one record lost
                    self.dropped += 1
                    continue
                lines.append(line)
                size += len(line) + 1
            due = time.monotonic() - since >= self.flush_every
            if lines and (stopping or size >= self.frame_bytes or due):
                self._write(lines)
                lines, size = [], 0
                since = time.monotonic()
            elif not lines:
                since = time.monotonic()
            if self.sink.full() and self.on_full is not None:
                self.on_full()
            if stopping:
                return

    def flush(self) -> None:
        """Write what is waiting now (when no writer thread runs: tests, one-shot use)."""
        lines = [fmt.encode(*item) for item in self._take()]
        if lines:
            self._write(lines)

    def _write(self, lines: list[bytes]) -> None:
        try:
            self.sink.write(lines, self.clock.now())
            self.records += len(lines)
        except OSError as e:
            self.errors += 1
            log.warning("recording: %d record(s) lost: %s", len(lines), e)


class Tap:
    """The fact store as the collectors see it, with every write also recorded.

    Reads and anything else go straight to the store (`__getattr__`).
    """

    def __init__(self, store: FactStore, recorder: Recorder) -> None:
        self._store = store
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def apply_events(self, events: list[dict[str, Any]], now: float) -> None:
        self._recorder.put((fmt.EVENTS, now, events), len(events))
        self._store.apply_events(events, now)

    def apply_event_bodies(
        self, events: list[dict[str, Any]], bodies: list[Any], now: float
    ) -> None:
        """The events of these message bodies (the Redis fast path): the bodies' JSON text is
        recorded as it is, the events applied."""
        self._recorder.put((fmt.BODIES, now, *bodies), len(events))
        self._store.apply_events(events, now)

    def set_inspect(
        self,
        pings: set[str],
        pinged_at: float,
        ping_ttl: float,
        active_queues: dict[str, list[str]],
        stats: dict[str, dict[str, Any]],
        active: dict[str, int],
        now: float,
        running: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        record = (
            fmt.INSPECT,
            now,
            sorted(pings),
            pinged_at,
            ping_ttl,
            active_queues,
            stats,
            active,
        )
        self._recorder.put((*record, running) if running is not None else record)
        self._store.set_inspect(
            pings, pinged_at, ping_ttl, active_queues, stats, active, now, running
        )

    def set_queue_depths(
        self, depths: dict[str, tuple[int, int | None]], errors: dict[str, str], now: float
    ) -> None:
        self._recorder.put((fmt.QUEUES, now, depths, errors))
        self._store.set_queue_depths(depths, errors, now)

    def probe_ok(self, source: str, now: float) -> None:
        self._recorder.put((fmt.PROBE_OK, now, source))
        self._store.probe_ok(source, now)

    def probe_failed(self, source: str, error: str, now: float) -> None:
        self._recorder.put((fmt.PROBE_FAILED, now, source, error))
        self._store.probe_failed(source, error, now)

    def stream_restored(self, lost_at: float, now: float) -> None:
        self._recorder.put((fmt.RESTORED, now, lost_at))
        self._store.stream_restored(lost_at, now)

    def count_malformed(self, n: int) -> None:
        self._recorder.put((fmt.MALFORMED, time.time(), n))
        self._store.count_malformed(n)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        self._recorder.put((fmt.DROPPED, time.time(), reason, n))
        self._store.count_dropped(reason, n)


def events_of(bodies: tuple[Any, ...]) -> list[dict[str, Any]]:
    """What the collector took from these bodies (collectors.events._apply_payloads): each
    an event or a list of them; anything else it counted as malformed (recorded apart)."""
    out: list[dict[str, Any]] = []
    for body in bodies:
        for event in body if type(body) is list else (body,):
            if type(event) is dict and type(event.get("type")) is str:
                out.append(event)
    return out


def apply(store: FactStore, record: fmt.Record) -> None:
    """Make one recorded write to a store again (the replay side of Tap)."""
    kind, t, a = record.kind, record.t, record.args
    if kind == fmt.EVENTS:
        store.apply_events(a[0], t)
    elif kind == fmt.BODIES:
        store.apply_events(events_of(a), t)
    elif kind == fmt.INSPECT:
        running = a[6] if len(a) > 6 else None  # recordings made before it have none
        store.set_inspect(set(a[0]), a[1], a[2], a[3], a[4], a[5], t, running)
    elif kind == fmt.QUEUES:
        depths = {q: (int(v[0]), v[1]) for q, v in a[0].items()}
        store.set_queue_depths(depths, a[1], t)
    elif kind == fmt.PROBE_OK:
        store.probe_ok(a[0], t)
    elif kind == fmt.PROBE_FAILED:
        store.probe_failed(a[0], a[1], t)
    elif kind == fmt.RESTORED:
        store.stream_restored(a[0], t)
    elif kind == fmt.MALFORMED:
        store.count_malformed(a[0])
    elif kind == fmt.DROPPED:
        store.count_dropped(a[0], a[1])


def tapped(store: FactStore, recorder: Recorder) -> FactStore:
    """The store the collectors are given when recording (a Tap stands in for it)."""
    return cast(FactStore, Tap(store, recorder))


def recording_header(config: Any, clock: Clock) -> dict[str, Any]:
    from kombu.utils.url import maybe_sanitize_url

    return header(
        clock,
        broker=maybe_sanitize_url(config.celery.broker_url),
        evaluation_interval=config.evaluation.interval,
        inspect_interval=config.celery.inspect_interval,
    )


def rolling(settings: Any, config: Any, clock: Clock) -> Recorder:
    """The daemon's rolling recording, from its `record:` section."""
    sink = RollingSink(
        settings.path,
        recording_header(config, clock),
        keep=settings.keep,
        max_size=settings.max_size,
    )
    return Recorder(sink, clock)
