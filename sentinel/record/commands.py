"""The `record`, `replay` and `test` subcommands (see CONTRACT.md, README "Tune a rule")."""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.display import format_value
from sentinel.record.size import format_size, parse_size
from sentinel.units import format_duration, parse_duration

if TYPE_CHECKING:
    from sentinel.config import Config
    from sentinel.notify.silence import Silence
    from sentinel.record.replay import Change, Page, Result


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    rec = sub.add_parser(
        "record",
        parents=[common],
        help="record what sentinel collects (events, inspect, queue depths) to a file",
    )
    rec.add_argument("--out", required=True, help="the recording file to write")
    rec.add_argument("--duration", default=None, help="stop after this long (e.g. 30m, 2h)")
    rec.add_argument("--max-size", default=None, help="stop at this size (e.g. 100MiB)")
    rp = sub.add_parser(
        "replay",
        parents=[common],
        help="run the rules and the notification pipeline over a recording; sends nothing",
    )
    rp.add_argument("recording", nargs="+", help="recording file(s), or a folder of segments")
    rp.add_argument("--json", action="store_true", help="the timeline as JSON")
    rp.add_argument("--from", dest="from_", default=None, help="start at T (RFC 3339, or +10m)")
    rp.add_argument("--to", default=None, help="stop at T (RFC 3339, or +1h from the start)")
    rp.add_argument(
        "--diff",
        default=None,
        metavar="OTHER.yaml",
        help="compare pages with it; exit 1 when any page appears, disappears or moves",
    )
    rp.add_argument(
        "--no-silences",
        action="store_true",
        help="ignore the silences of the state file (storage.path), which a replay reads"
        " (read-only) by default",
    )
    ts = sub.add_parser("test", parents=[common], help="run YAML rule tests (like promtool)")
    ts.add_argument("files", nargs="+", help="test files")


# -- record --------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    from sentinel.app import Sentinel
    from sentinel.cli.common import load_config as _load
    from sentinel.clock import SystemClock
    from sentinel.record.recorder import FileSink, Recorder, recording_header

    config = _load(args)
    if config is None:
        return 1
    try:
        duration = parse_duration(args.duration) if args.duration else None
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError as e:
        print(f"sentinel record: {e}", file=sys.stderr)
        return 2
    clock = SystemClock()
    try:
        sink = FileSink(args.out, recording_header(config, clock), max_size)
    except OSError as e:
        print(f"sentinel record: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    recorder = Recorder(sink, clock)
    stop = threading.Event()
    recorder.on_full = stop.set
    sentinel = Sentinel(config, clock, persist=False, recorder=recorder)

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    recorder.start()
    sentinel.events.start()
    print(f"recording to {args.out} (Ctrl-C to stop)", file=sys.stderr)
    next_inspect = next_queues = started
    try:
        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            # The daemon's schedule: inspect every inspect_interval, queue depths at every
            # evaluation (app.Sentinel.evaluate).
            if now >= next_inspect:
                sentinel.inspector.collect()
                next_inspect = now + config.celery.inspect_interval
            if now >= next_queues and sentinel.queues is not None:
                sentinel.queues.collect()
                next_queues = now + config.evaluation.interval
            stop.wait(min(0.5, max(0.0, min(next_inspect, next_queues) - time.monotonic())))
    finally:
        sentinel.events.stop()
        recorder.stop()
        if sentinel.queues is not None:
            sentinel.queues.close()
    from sentinel.record.rulestest import compact

    took = time.monotonic() - started
    dropped = f", {recorder.dropped} dropped (writer behind)" if recorder.dropped else ""
    print(
        f"recorded {recorder.records} record(s) in {compact(took)} to {args.out} "
        f"({format_size(sink.size)}){dropped}",
        file=sys.stderr,
    )
    return 0


# -- replay --------------------------------------------------------------------------------


def parse_time(text: str, start: float) -> float:
    """RFC 3339 / ISO 8601, seconds since the epoch, or +DURATION from the start."""
    text = text.strip()
    if text.startswith("+"):
        return start + parse_duration(text[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected a time like 2026-12-01T22:10:00Z or +10m, got {text!r:.40}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _config(path: str) -> Config | None:
    from sentinel.cli.common import print_errors as _print_errors
    from sentinel.config.loader import ConfigError, read_config

    try:
        raw = read_config(path)
        from sentinel.config import validate

        return validate(raw)
    except ConfigError as e:
        _print_errors(path, e.errors)
        return None


def state_silences(config: Config) -> tuple[list[Silence], str]:
    """The silences of the config's state file, read-only, and words saying where they came
    from. A missing file has none; an unreadable one raises sqlite3.Error."""
    from sentinel.notify.silence.repo import read_silences

    path = Path(config.storage.path)
    if not path.is_file():
        return [], f"no silences ({path} does not exist)"
    silences = read_silences(path)
    return silences, f"{len(silences)} silence(s) from {path}"


def replay_file(
    config: Config,
    paths: Sequence[str],
    from_: str | None,
    to: str | None,
    silences: Sequence[Silence] = (),
) -> tuple[Result, dict[str, Any]]:
    from sentinel.record import replay

    header, records = replay.read(paths)
    start = float(header.get("started_at") or 0.0)
    records = iter(records)
    first = None
    if not start:
        first = next(records, None)
        start = first.t if first is not None else time.time()
    begin = parse_time(from_, start) if from_ else None
    until = parse_time(to, start) if to else None

    def chained() -> Any:
        if first is not None:
            yield first
        yield from records

    result = replay.run(
        config, chained(), start=start, until=until, evaluate_from=begin, silences=silences
    )
    return result, header


def cmd_replay(args: argparse.Namespace) -> int:
    from sentinel.config.loader import default_path
    from sentinel.record.format import RecordingError

    path = args.config or default_path()
    config = _config(path)
    if config is None:
        return 1
    other = None
    if args.diff:
        other = _config(args.diff)
        if other is None:
            return 1
    silences: list[Silence] = []
    muted = "silences ignored (--no-silences)"
    if not args.no_silences:
        try:
            silences, muted = state_silences(config)
        except sqlite3.Error as e:
            print(
                f"sentinel replay: cannot read the silences of {config.storage.path}: {e}"
                " (--no-silences replays without them)",
                file=sys.stderr,
            )
            return 1
    wall = time.monotonic()
    try:
        result, header = replay_file(config, args.recording, args.from_, args.to, silences)
        other_result = (
            replay_file(other, args.recording, args.from_, args.to, silences)[0] if other else None
        )
    except (RecordingError, OSError) as e:
        print(f"sentinel replay: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"sentinel replay: {e}", file=sys.stderr)
        return 2
    took = time.monotonic() - wall
    names = " ".join(args.recording)
    differ = False
    if other_result is not None:
        diff = diff_pages(result.pages, other_result.pages)
        differ = any(mark != "=" for mark, _, _ in diff)
        if args.json:
            print(json.dumps(diff_json(diff, path, args.diff), indent=2))
        else:
            print_diff(diff, result, path, args.diff, names)
    elif args.json:
        print(json.dumps(timeline_json(result, header, names, path, took, muted), indent=2))
    else:
        print_timeline(result, config, names, path, took, muted)
    if result.error:
        print(f"sentinel replay: {result.error}; replayed what came before", file=sys.stderr)
        return 1
    # Like diff(1) and a test: a difference is a failure a script can act on.
    return 1 if differ else 0


def at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offset(ts: float, start: float) -> str:
    from sentinel.record.rulestest import compact

    return "+" + compact(max(0.0, ts - start))


def alert_text(name: str, labels: Mapping[str, str]) -> str:
    rest = ",".join(
        f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    return f"{name}{{{rest}}}" if rest else name


def change_line(c: Change, start: float) -> str:
    value = ""
    if c.after != "inactive" or c.value is not None:
        value = (
            f"  value {format_value(c.kind, c.value)} vs threshold "
            f"{format_value(c.kind, c.threshold)}"
        )
    return (
        f"{at(c.at)}  {offset(c.at, start):>8}  {alert_text(c.alertname, c.labels):<40} "
        f"{c.before} -> {c.after}{value}"
    )


def page_line(p: Page, start: float) -> str:
    group = ",".join(f'{k}="{v}"' for k, v in sorted(p.group_labels.items()))
    alerts = ", ".join(
        alert_text(a.alertname, a.labels) + ("" if a.status == p.status else f" ({a.status})")
        for a in p.alerts
    )
    return (
        f"{at(p.at)}  {offset(p.at, start):>8}  PAGE {p.channel} {p.status.upper()} "
        f"{{{group}}}: {alerts}"
    )


def print_timeline(
    result: Result, config: Config, names: str, path: str, took: float, muted: str = ""
) -> None:
    start = result.start
    from sentinel.record.rulestest import compact

    span = compact(max(0.0, result.end - start))
    print(
        f"replay of {names} ({at(start)} .. {at(result.end)}, {span}, "
        f"{result.records} records) with {path}" + (f"; {muted}" if muted else "")
    )
    lines: list[tuple[float, int, str]] = []
    for c in result.changes:
        lines.append((c.at, 0, change_line(c, start)))
    for p in result.pages:
        lines.append((p.at, 1, page_line(p, start)))
    for _, _, line in sorted(lines, key=lambda x: (x[0], x[1])):
        print(line)
    per_channel: dict[str, dict[str, int]] = {}
    for p in result.pages:
        per_channel.setdefault(p.channel, {"firing": 0, "resolved": 0})[p.status] += 1
    channels = "; ".join(
        f"{ch}: {n['firing']} firing, {n['resolved']} resolved"
        for ch, n in sorted(per_channel.items())
    )
    print(
        f"{len(result.changes)} transition(s), {len(result.pages)} page(s)"
        + (f" ({channels})" if channels else "")
        + f"; {result.evaluations} evaluation(s) in {took:.2f}s"
    )


def timeline_json(
    result: Result, header: dict[str, Any], names: str, path: str, took: float, muted: str = ""
) -> dict[str, Any]:
    return {
        "recording": names,
        "config": path,
        "silences": muted,
        "start": result.start,
        "end": result.end,
        "records": result.records,
        "evaluations": result.evaluations,
        "seconds": round(took, 3),
        "header": header,
        "transitions": [c.as_dict() for c in result.changes],
        "pages": [p.as_dict() for p in result.pages],
        "error": result.error,
    }


# -- diff ----------------------------------------------------------------------------------


def diff_pages(a: Sequence[Page], b: Sequence[Page]) -> list[tuple[str, Page | None, Page | None]]:
    """Pairs the pages of two replays: ("=", p, q) the same page at the same second,
    ("~", p, q) the same page at another time, ("-", p, None) only in a, ("+", None, q) only
    in b. Pages are the same when channel, status, group and alerts agree; the n-th such page
    of one run pairs with the n-th of the other."""
    by_id: dict[tuple[Any, ...], list[Page]] = {}
    for q in b:
        by_id.setdefault(q.identity(), []).append(q)
    out: list[tuple[str, Page | None, Page | None]] = []
    for p in a:
        twins = by_id.get(p.identity())
        if twins:
            q = twins.pop(0)
            out.append(("=" if abs(q.at - p.at) < 1.0 else "~", p, q))
        else:
            out.append(("-", p, None))
    for twins in by_id.values():
        out.extend(("+", None, q) for q in twins)
    out.sort(key=lambda d: (d[1] or d[2]).at)  # type: ignore[union-attr]
    return out


def print_diff(
    diff: list[tuple[str, Page | None, Page | None]], result: Result, a: str, b: str, names: str
) -> None:
    start = result.start
    print(f"pages over {names}: {a} (-) vs {b} (+)")
    for mark, p, q in diff:
        if mark == "=":
            continue
        if mark == "~":
            assert p is not None and q is not None
            delta = q.at - p.at
            sign = "+" if delta > 0 else "-"
            print(
                f"~ {page_line(p, start)}  moved to {at(q.at)} "
                f"({sign}{format_duration(abs(delta))})"
            )
        else:
            page = p or q
            assert page is not None
            print(f"{mark} {page_line(page, start)}")
    counts = {m: sum(1 for d in diff if d[0] == m) for m in "=~-+"}
    print(
        f"{counts['-']} page(s) only with {a}, {counts['+']} only with {b}, "
        f"{counts['~']} moved, {counts['=']} unchanged"
    )


def diff_json(diff: list[tuple[str, Page | None, Page | None]], a: str, b: str) -> dict[str, Any]:
    names = {"=": "unchanged", "~": "moved", "-": "disappeared", "+": "appeared"}
    return {
        "a": a,
        "b": b,
        "pages": [
            {
                "change": names[m],
                "a": p.as_dict() if p else None,
                "b": q.as_dict() if q else None,
            }
            for m, p, q in diff
        ],
    }


# -- test ----------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    from sentinel.record.rulestest import run_files

    return run_files([Path(f) for f in args.files])


COMMANDS = {"record": cmd_record, "replay": cmd_replay, "test": cmd_test}
