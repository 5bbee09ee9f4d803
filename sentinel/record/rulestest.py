"""`sentinel test`: rule tests in YAML, run through the replay engine (like `promtool test`).

    config: ../rules.example.yaml      # a path (relative to this file) or an inline mapping
    tests:
      - name: a failing task pages
        input:
          - worker w1 up from 0s to 10m                  # heartbeats every 2 s, online first
          - at 1m: 40 x e2e.fail failed over 2m           # received, started, failed; spread
          - at 1m: 100 x e2e.ok succeeded over 2m on w1 runtime 0.5s
          - at 3m: queue celery depth 5000 consumers 1
          - at 4m: worker w1 offline                      # or: `worker w1 up ... to 4m` (dies)
          - at 4m: inspect ping w2 w3
          - {at: 5m, event: {type: task-failed, uuid: x1, name: e2e.fail, timestamp: 0}}
        alerts:                                           # state at offsets
          - {at: 3m, alertname: TaskFailureRate, labels: {task: e2e.fail}, state: firing}
          - {at: 1m, alertname: TaskFailureRate, state: inactive}
        pages:                                            # exactly these pages (an extra fails)
          - {at: 3m30s, tolerance: 30s, channel: log, status: firing, alertname: TaskFailureRate}

Offsets are from the test's start; `timestamp: 0` in a raw event means "its own time". The
default page tolerance is one evaluation interval.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.display import format_value
from sentinel.record import format as fmt
from sentinel.units import parse_duration

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: every test starts here
HEARTBEAT = 2.0  # Celery's default worker heartbeat interval
STATUSES = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
_FINISHED = ("succeeded", "failed", "retried", "revoked", "rejected")
ALERT_STATES = ("inactive", "pending", "firing", "resolved")


class RuleTestError(Exception):
    """The test file itself is wrong (not a failing test)."""


_AT = re.compile(r"^\s*at\s+(\S+?)\s*:\s*(.*)$")
_AT_SUFFIX = re.compile(r"^(.*?)\s+at\s+(\S+)\s*$")
_TASKS = re.compile(
    r"^(?P<n>\d+)\s*x\s+(?P<task>\S+)\s+(?P<status>\w+)"
    r"(?:\s+over\s+(?P<over>\S+))?(?:\s+on\s+(?P<worker>\S+))?"
    r"(?:\s+runtime\s+(?P<runtime>\S+))?\s*$"
)
_WORKER = re.compile(
    r"^worker\s+(?P<name>\S+)\s+(?P<what>up|online|offline)"
    r"(?:\s+from\s+(?P<from>\S+))?(?:\s+(?:to|until)\s+(?P<to>\S+))?\s*$"
)
_QUEUE = re.compile(
    r"^queue\s+(?P<name>\S+)\s+depth\s+(?P<depth>\d+)(?:\s+consumers\s+(?P<consumers>\d+))?\s*$"
)
_PING = re.compile(r"^inspect\s+ping(?P<workers>(?:\s+\S+)*)\s*$")


@dataclass
class Inputs:
    """Records built from a test's input, before sorting."""

    end: float  # the last offset the test looks at
    records: list[fmt.Record] = field(default_factory=list)
    _uuid: int = 0

    def uuid(self) -> str:
        self._uuid += 1
        return f"t-{self._uuid}"

    def events(self, t: float, *events: dict[str, Any]) -> None:
        self.records.append(fmt.Record(fmt.EVENTS, START + t, (list(events),)))


def _duration(text: str, where: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise RuleTestError(f"{where}: {e}") from None


def parse_line(line: str, inputs: Inputs, where: str, at: float | None = None) -> None:
    """One shorthand input line to records (see the module doc for the forms)."""
    text = line.strip()
    if (m := _AT.match(text)) is not None:
        at, text = _duration(m.group(1), where), m.group(2).strip()
    elif (m := _AT_SUFFIX.match(text)) is not None and not text.startswith("worker"):
        text, at = m.group(1).strip(), _duration(m.group(2), where)
    t = at or 0.0
    if (m := _TASKS.match(text)) is not None:
        status = m.group("status")
        if status not in STATUSES:
            raise RuleTestError(f"{where}: unknown task status {status!r} (one of {STATUSES})")
        n = int(m.group("n"))
        over = _duration(m.group("over"), where) if m.group("over") else 0.0
        runtime = _duration(m.group("runtime"), where) if m.group("runtime") else 0.1
        worker = m.group("worker") or "worker@test"
        name = m.group("task")
        for i in range(n):
            ti = t + (over * i / n if n else 0.0)
            _task(inputs, ti, name, status, worker, runtime)
        return
    if (m := _WORKER.match(text)) is not None:
        name, what = m.group("name"), m.group("what")
        if what == "offline":
            inputs.events(t, _worker_event("worker-offline", name, START + t))
            return
        begin = _duration(m.group("from"), where) if m.group("from") else t
        end = _duration(m.group("to"), where) if m.group("to") else inputs.end
        inputs.events(begin, _worker_event("worker-online", name, START + begin))
        s = begin
        while s <= end:
            inputs.events(s, _worker_event("worker-heartbeat", name, START + s))
            s += HEARTBEAT
        return
    if (m := _QUEUE.match(text)) is not None:
        consumers = int(m.group("consumers")) if m.group("consumers") else None
        depths = {m.group("name"): [int(m.group("depth")), consumers]}
        inputs.records.append(fmt.Record(fmt.QUEUES, START + t, (depths, {})))
        return
    if (m := _PING.match(text)) is not None:
        workers = m.group("workers").split()
        inputs.records.append(
            fmt.Record(fmt.INSPECT, START + t, (workers, START + t, 35.0, {}, {}, {}))
        )
        return
    raise RuleTestError(f"{where}: cannot read input {line!r}")


def _worker_event(kind: str, name: str, ts: float) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "hostname": name, "timestamp": ts, "freq": HEARTBEAT}
    if kind == "worker-heartbeat":
        event.update(active=0, processed=0)
    return event


def _task(inputs: Inputs, t: float, name: str, status: str, worker: str, runtime: float) -> None:
    uuid = inputs.uuid()
    ts = START + t
    base = {"uuid": uuid, "hostname": worker}
    if status == "sent":
        inputs.events(t, {**base, "type": "task-sent", "name": name, "timestamp": ts})
        return
    inputs.events(t, {**base, "type": "task-received", "name": name, "timestamp": ts})
    if status == "received":
        return
    if status in ("revoked", "rejected"):
        inputs.events(t, {**base, "type": f"task-{status}", "name": name, "timestamp": ts})
        return
    inputs.events(t, {**base, "type": "task-started", "timestamp": ts})
    if status == "started":
        return
    done = {**base, "type": f"task-{status}", "timestamp": ts + runtime}
    if status in ("succeeded", "failed"):
        done["runtime"] = runtime
    inputs.events(t + runtime, done)


def parse_input(item: Any, inputs: Inputs, where: str) -> None:
    if isinstance(item, str):
        parse_line(item, inputs, where)
        return
    if not isinstance(item, Mapping):
        raise RuleTestError(f"{where}: expected a line or a mapping, got {type(item).__name__}")
    if len(item) == 1:  # `- at 1m: 40 x e2e.fail failed`: YAML reads it as a mapping
        ((key, value),) = item.items()
        if isinstance(key, str) and key.startswith("at ") and isinstance(value, str):
            parse_line(f"{key}: {value}", inputs, where)
            return
    at = _duration(str(item.get("at", 0)), where)
    if "event" in item or "events" in item:
        raw = item.get("events") or [item["event"]]
        events = []
        for e in raw:
            if not isinstance(e, Mapping) or "type" not in e:
                raise RuleTestError(f"{where}: an event is a mapping with a type")
            e = dict(e)
            if not e.get("timestamp"):
                e["timestamp"] = START + at
            events.append(e)
        inputs.events(at, *events)
    elif "line" in item:
        parse_line(str(item["line"]), inputs, where, at)
    else:
        raise RuleTestError(f"{where}: expected `event`, `events` or `line` with `at`")


# -- expectations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertExpect:
    at: float
    alertname: str
    labels: Mapping[str, str]
    state: str


@dataclass(frozen=True)
class PageExpect:
    at: float
    tolerance: float
    channel: str
    status: str
    alertname: str | None
    labels: Mapping[str, str]


def _alert_expect(item: Any, where: str) -> AlertExpect:
    if not isinstance(item, Mapping) or "alertname" not in item or "at" not in item:
        raise RuleTestError(f"{where}: an expected alert has `at`, `alertname` and `state`")
    state = str(item.get("state", "firing"))
    if state not in ALERT_STATES:
        raise RuleTestError(f"{where}: state {state!r} is not one of {ALERT_STATES}")
    return AlertExpect(
        _duration(str(item["at"]), where),
        str(item["alertname"]),
        {str(k): str(v) for k, v in (item.get("labels") or {}).items()},
        state,
    )


def _page_expect(item: Any, where: str, tolerance: float) -> PageExpect:
    if not isinstance(item, Mapping) or "channel" not in item or "at" not in item:
        raise RuleTestError(f"{where}: an expected page has `at`, `channel` and `status`")
    status = str(item.get("status", "firing"))
    if status not in ("firing", "resolved"):
        raise RuleTestError(f"{where}: status {status!r} is not firing or resolved")
    return PageExpect(
        _duration(str(item["at"]), where),
        _duration(str(item["tolerance"]), where) if "tolerance" in item else tolerance,
        str(item["channel"]),
        status,
        str(item["alertname"]) if "alertname" in item else None,
        {str(k): str(v) for k, v in (item.get("labels") or {}).items()},
    )


# -- running ---------------------------------------------------------------------------------


def compact(seconds: float) -> str:
    """90 -> 1m30s, 3725 -> 1h2m5s, 0.5 -> 0.5s: offsets in reports, to the second."""
    if seconds < 1:
        return f"{seconds:g}s"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"


def _offset(t: float) -> str:
    return "+" + compact(max(0.0, t))


def _labels(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _what(p: PageExpect) -> str:
    if p.labels:
        return _labels(p.alertname or "", p.labels)
    return p.alertname or "(any alert)"


def _load_config(spec: Any, base: Path) -> Any:
    from sentinel.config import validate
    from sentinel.config.loader import ConfigError, read_config

    try:
        if isinstance(spec, str):
            raw = read_config(base / spec)
        elif isinstance(spec, Mapping):
            raw = dict(spec)
        else:
            raise RuleTestError("`config` is a path or a mapping")
        return validate(raw)
    except ConfigError as e:
        raise RuleTestError("config: " + "; ".join(e.errors)) from None


def run_test(config: Any, test: Mapping[str, Any], where: str) -> list[str]:
    """One test case; the failures, as report lines (empty: it passed)."""
    from sentinel.model import State
    from sentinel.record.replay import Replay, run

    interval = config.evaluation.interval
    alerts = [
        _alert_expect(a, f"{where}.alerts[{i}]") for i, a in enumerate(test.get("alerts") or [])
    ]
    pages_given = "pages" in test
    pages = [
        _page_expect(p, f"{where}.pages[{i}]", interval)
        for i, p in enumerate(test.get("pages") or [])
    ]
    horizon = max([a.at for a in alerts] + [p.at + p.tolerance for p in pages] + [0.0]) + interval
    if "duration" in test:
        horizon = _duration(str(test["duration"]), f"{where}.duration")
    inputs = Inputs(end=horizon)
    for i, item in enumerate(test.get("input") or []):
        parse_input(item, inputs, f"{where}.input[{i}]")
    records = sorted(inputs.records, key=lambda r: r.t)  # stable: same-time order kept

    due = sorted(alerts, key=lambda a: a.at)
    seen: dict[int, tuple[str, str]] = {}  # expectation index -> (state, detail)

    def check(engine: Replay, now: float) -> None:
        while due and START + due[0].at <= now:
            e = due.pop(0)
            state, detail = "inactive", ""
            for alert in engine.sentinel.book.alerts.values():
                labels = alert.labels
                if labels.get("alertname") != e.alertname:
                    continue
                if any(labels.get(k) != v for k, v in e.labels.items()):
                    continue
                if alert.state is State.RESOLVED and state != "inactive":
                    continue
                state = alert.state.value
                kind = engine.kinds.get(alert.rule)
                detail = (
                    f"value {format_value(kind, alert.value)} vs threshold "
                    f"{format_value(kind, alert.threshold)}"
                )
                if alert.state is not State.RESOLVED:
                    break
            seen[id(e)] = (state, detail)

    result = run(config, records, start=START, until=START + horizon, on_step=check)
    failures: list[str] = []
    if result.error:
        failures.append(result.error)
    for e in alerts:
        state, detail = seen.get(id(e), ("inactive", "never evaluated"))
        ok = state == e.state or (e.state == "inactive" and state == "resolved")
        if not ok:
            extra = f" ({detail})" if detail else ""
            failures.append(
                f"alert {_labels(e.alertname, e.labels)} at {_offset(e.at)}: "
                f"expected {e.state}, got {state}{extra}"
            )
    unmatched = list(result.pages)
    for p in pages:
        match = None
        for page in unmatched:
            if page.channel != p.channel or page.status != p.status:
                continue
            if p.alertname is not None and p.alertname not in page.alertnames:
                continue
            if p.labels and not any(
                all(a.labels.get(k) == v for k, v in p.labels.items()) for a in page.alerts
            ):
                continue
            if abs(page.at - START - p.at) <= p.tolerance:
                match = page
                break
        if match is not None:
            unmatched.remove(match)
            continue
        got = [
            f"{q.status} {_offset(q.at - START)} {','.join(q.alertnames)}"
            for q in result.pages
            if q.channel == p.channel
        ]
        failures.append(
            f"page {p.channel} {p.status} {_what(p)}"
            f" at {_offset(p.at)} ±{compact(p.tolerance)}: not sent; "
            + (f"{p.channel} got: {'; '.join(got)}" if got else f"{p.channel} got none")
        )
    if pages_given:
        for q in unmatched:
            failures.append(
                f"unexpected page {q.channel} {q.status} {','.join(q.alertnames)} "
                f"at {_offset(q.at - START)}"
            )
    return failures


def run_file(path: Path) -> tuple[int, int, list[str]]:
    """(tests, failed, report lines) for one file."""
    from sentinel.config.loader import ConfigError, read_config

    try:
        try:
            doc = read_config(path)
        except ConfigError as e:
            raise RuleTestError("; ".join(e.errors)) from None
        if "config" not in doc or not isinstance(doc.get("tests"), list):
            raise RuleTestError("a test file has `config` and a list of `tests`")
        config = _load_config(doc["config"], path.parent)
        lines: list[str] = []
        failed = 0
        tests = doc["tests"]
        for i, test in enumerate(tests):
            if not isinstance(test, Mapping):
                raise RuleTestError(f"tests[{i}]: expected a mapping")
            name = str(test.get("name", f"tests[{i}]"))
            failures = run_test(config, test, f"tests[{i}]")
            if failures:
                failed += 1
                lines.append(f'    test "{name}":')
                lines.extend(f"      {f}" for f in failures)
        return len(tests), failed, lines
    except RuleTestError as e:
        return 0, 1, [f"    error: {e}"]


def run_files(paths: Sequence[Path]) -> int:
    total = failed_total = 0
    for path in paths:
        print(f"Unit Testing: {path}")
        tests, failed, lines = run_file(path)
        total += tests
        failed_total += failed
        if failed:
            print("  FAILED:")
            for line in lines:
                print(line)
        else:
            print(f"  SUCCESS ({tests} test(s))")
        print()
    status = "FAILED" if failed_total else "SUCCESS"
    print(f"{status}: {total - failed_total if total else 0} of {total} test(s) passed")
    sys.stdout.flush()
    return 1 if failed_total else 0
