"""Evaluation cost: one tick of 100 rules over 10,000 task series and 200 workers.

In-process, on a FakeClock, two cases; in each, every tick is evaluated twice, in alternating
order, each mode with its own alert book and its own store fed the same seeded traffic (a
shared store let the second mode of a tick read the window answers the first had just kept,
which made it look 2-3x cheaper than it is): "changed" (the default: the
per-series rules evaluate only the series whose window answers may have changed since their
last tick, rules/incremental.py) and "every" (AlertBook(incremental=False): every rule over
every matching series each tick, as before: the baseline). Both read the kept window answers
(windows.INCREMENTAL).

- worst: the store is filled for the longest window (10 minutes of 10-second buckets, every
  series busy in every bucket, with latency sketches), then ticks 15 s apart as with the
  default evaluation interval; between two ticks a new bucket of traffic lands on every series
  (not timed), so no answer can be reused.
- 5%: between two ticks a rotating 5% of the series get traffic (each series every 20th tick,
  so ~2 busy buckets in a 10-minute window), the rest are idle: what a large deployment sees.

Each tick's longest hold of the store lock is measured too (ingest waits for it): the book
takes it once per rule.

After each tick, the value history records it as App.evaluate does
(`ValueHistory.record_parts(now, rows.parts())`, the status page's charts; CPU time, not in the
tick's figures): in "changed" mode only the per-series samples that changed are written, the
others carried (alerts/values.py). The changed mode's rows are also written in full into a
second history (`record(now, rows.samples())`, as before), timed in the same ticks, and the two
histories must read the same at the end.

The rules are what a large deployment writes: a few over every task (`*`), most over one
application's tasks (`appN.*`, 100 names each), plus worker and queue rules. A few task names
fail or run slowly on purpose, so some alerts fire and stay firing.

    .venv/bin/python bench/evaluate.py [--series 10000] [--rules 100] [--ticks 50]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import threading
import time
from collections import defaultdict
from typing import Any

from _common import median

from sentinel.alerts.book import AlertBook
from sentinel.alerts.values import ValueHistory
from sentinel.config import parse
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.facts.windows import FAILED, QUEUE_WAIT, RECEIVED, RUNTIME, SENT, STARTED, SUCCEEDED
from sentinel.gc_pause import gc_paused
from sentinel.rules import evaluator

T0 = 1_700_000_000.0
INTERVAL = 15.0
BUCKET = 10.0


def rules_yaml(n: int, apps: int, workers: int) -> str:
    """n rules: 4 over every task, then per-application rules, then worker and queue rules."""
    rules = [
        "- {name: FailureRateAll, kind: failure_rate, tasks: ['*'], window: 5m,"
        " threshold: 10%, min_count: 20}",
        "- {name: FailureRateAllLong, kind: failure_rate, tasks: ['*'], window: 10m,"
        " threshold: 5%, min_count: 50}",
        "- {name: SlowAll, kind: task_latency, tasks: ['*'], measure: total, percentile: 95,"
        " threshold: 30s, window: 10m}",
        "- {name: SlowRuntimeAll, kind: task_latency, tasks: ['*'], measure: runtime,"
        " percentile: 99, threshold: 60s, window: 5m}",
        "- {name: NoLiveWorkers, kind: no_live_workers, severity: critical}",
        f"- {{name: TooFewWorkers, kind: no_live_workers, min_workers: {workers // 2}}}",
        "- {name: IdleWorker, kind: idle_worker, idle_for: 15m, severity: info}",
        "- {name: IdleWorkerGpu, kind: idle_worker, workers: ['gpu*'], idle_for: 5m}",
        "- {name: QueueBacklog, kind: queue_backlog, queues: ['*'], threshold: 1000}",
        "- {name: QueueBacklogHigh, kind: queue_backlog, queues: ['high*'], threshold: 10}",
    ]
    i = 0
    while len(rules) < n:
        app = i % apps
        if i % 2 == 0:
            rules.append(
                f"- {{name: FailureRate{i}, kind: failure_rate, tasks: ['app{app}.*'],"
                f" window: {'5m' if i % 4 == 0 else '10m'}, threshold: 5%, min_count: 20}}"
            )
        else:
            rules.append(
                f"- {{name: Slow{i}, kind: task_latency, tasks: ['app{app}.*'],"
                f" measure: {('total', 'runtime', 'queue_wait')[i % 3]}, percentile: 95,"
                f" threshold: 20s, window: {'5m' if i % 3 == 0 else '10m'}}}"
            )
        i += 1
    body = "\n".join(rules[:n])
    return f"limits: {{bucket: {BUCKET:g}s}}\nrules:\n" + "\n".join(
        "  " + line for line in body.splitlines()
    )


def fill(series: list[TaskSeries], now: float, per_bucket: int, rng: random.Random) -> None:
    """One bucket of traffic on every series: counters and latency observations.

    Only TaskSeries.count and .observe, so it fills whatever layout the ring has."""
    for i, s in enumerate(series):
        count = s.count
        n = per_bucket * 4
        bad = i % 97 == 0  # ~1% of names fail a fifth of the time and are slow
        failed = n // 5 if bad else (1 if rng.random() < 0.1 else 0)
        for slot, k in (
            (SENT, n),
            (RECEIVED, n),
            (STARTED, n),
            (SUCCEEDED, n - failed),
            (FAILED, failed),
        ):
            for _ in range(k):
                count(slot, now)
        scale = 40.0 if bad else 1.0
        for _ in range(per_bucket):
            wait = rng.expovariate(5.0)
            run = rng.lognormvariate(-1.5, 1.0) * scale
            s.observe(QUEUE_WAIT, wait, now)
            s.observe(RUNTIME, run, now)
            s.observe(2, wait + run, now)  # TOTAL


class TimedLock:
    """The store's lock, recording how long each hold lasts (the longest is what ingest waits
    behind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = 0.0
        self.longest = 0.0

    def __enter__(self) -> bool:
        self._lock.acquire()
        self._since = time.perf_counter()
        return True

    def __exit__(self, *exc: object) -> None:
        held = time.perf_counter() - self._since
        self.longest = max(self.longest, held)
        self._lock.release()

    def acquire(self, *args: Any, **kw: Any) -> bool:
        got = self._lock.acquire(*args, **kw)
        self._since = time.perf_counter()
        return got

    def release(self) -> None:
        self.__exit__()


class World:
    """One store and its traffic. Each mode ticks a world of its own, built and fed from the
    same seed, so neither reads window answers the other kept (a mode ticking second in a
    shared store found its answers already kept by the first, and looked 2-3x cheaper)."""

    def __init__(self, args: argparse.Namespace, config: Any, case: str) -> None:
        self.args, self.case = args, case
        apps = max(1, args.series // 100)
        store = self.store = FactStore(
            bucket=BUCKET, retention=config.max_window, max_task_names=args.series
        )
        self.lock = TimedLock()
        store.lock = self.lock  # type: ignore[assignment]
        self.rng = random.Random(5)
        self.series = [
            s
            for i in range(args.series)
            if (s := store.series(f"app{i % apps}.tasks.t{i // apps}")) is not None
        ]
        now = T0
        if case == "worst":
            for t in range(int(config.max_window // BUCKET) + 1):
                now = T0 + t * BUCKET
                fill(self.series, now, args.per_bucket, self.rng)
        else:
            ticks_back = int(config.max_window // INTERVAL) + 1
            for t in range(ticks_back):
                now = T0 + t * INTERVAL
                fill(self.traffic(t), now, args.per_bucket, self.rng)
        self.heartbeats(now)
        store.set_queue_depths(
            {f"{'high' if q % 5 == 0 else 'q'}{q}": (q * 100, 1) for q in range(20)}, {}, now
        )
        self.now = now

    def traffic(self, tick: int) -> list[TaskSeries]:
        if self.case == "worst":
            return self.series
        every = 20  # the 5% case: each series is busy every 20th tick
        return [s for i, s in enumerate(self.series) if (i + tick) % every == 0]

    def heartbeats(self, at: float) -> None:
        events = []
        for w in range(self.args.workers):
            host = f"{'gpu' if w % 10 == 0 else 'cpu'}{w}@node{w}"
            if w % 50 == 49:
                continue  # a few workers are dead
            events.append(
                {
                    "type": "worker-heartbeat",
                    "hostname": host,
                    "freq": 2.0,
                    "active": w % 3,
                    "processed": int(at),
                    "timestamp": at,
                }
            )
        self.store.apply_events(events, at)

    def advance(self, tick: int, now: float) -> None:
        """The traffic between two ticks and the maintenance after it (not timed)."""
        fill(self.traffic(tick), now, self.args.per_bucket, self.rng)
        self.heartbeats(now)
        self.store.prune(now)


def run_case(args: argparse.Namespace, case: str) -> list[dict[str, Any]]:
    """Both modes, each over a world of its own with the same traffic: [every, changed]."""
    apps = max(1, args.series // 100)
    config = parse(rules_yaml(args.rules, apps, args.workers), env={})
    rules = config.rules
    modes = (False, True) if args.modes == "both" else (args.modes == "changed",)
    setup = time.perf_counter()
    worlds = {m: World(args, config, case) for m in modes}
    setup = (time.perf_counter() - setup) / len(modes)
    now = worlds[modes[0]].now

    # The modes tick in alternating order, so a change in the machine's load hits both alike:
    # the per-tick ratio is the figure to trust.
    books = {m: AlertBook(None, incremental=m) for m in modes}
    durations: dict[bool, list[float]] = {m: [] for m in modes}
    in_rules: dict[bool, list[float]] = {m: [] for m in modes}
    holds: dict[bool, list[float]] = {m: [] for m in modes}
    samples = 0
    limits = config.limits
    histories = {m: ValueHistory(limits.history_points, limits.max_history_series) for m in modes}
    in_full = ValueHistory(limits.history_points, limits.max_history_series)  # as before
    history_cpu: dict[bool, list[float]] = {m: [] for m in modes}
    full_cpu: list[float] = []
    tick0 = int((now - T0) // INTERVAL) + 1
    for k in range(args.ticks):
        now += INTERVAL
        for world in worlds.values():
            world.advance(tick0 + k, now)
        for mode in modes if k % 2 else modes[::-1]:
            store, lock = worlds[mode].store, worlds[mode].lock
            lock.longest = 0.0
            started = time.perf_counter()
            with gc_paused():  # as the app ticks
                if args.profiler is not None and k:  # not the cold first tick
                    args.profiler.enable()
                _, rows = books[mode].tick(rules, store, now)
                if args.profiler is not None:
                    args.profiler.disable()
            durations[mode].append(time.perf_counter() - started)
            holds[mode].append(lock.longest)
            in_rules[mode].append(books[mode].last_rules_duration)
            samples = len(rows)
            # As App.evaluate, after the tick (outside gc_paused); the changed mode's rows also
            # written in full, as before, in alternating order.
            writes = [(histories[mode], rows.parts, history_cpu[mode])]
            if mode:
                writes.append((in_full, lambda r=rows: [r.samples()], full_cpu))
            for history, parts, cpu in writes if k % 2 else writes[::-1]:
                t = time.thread_time()
                history.record_parts(now, parts())
                cpu.append(time.thread_time() - t)

    # Where a full evaluation goes: each rule's evaluator over every matching series (sharing
    # window aggregates, the cyclic garbage collector paused as the app does), on a fresh tick.
    by_kind: dict[bool, dict[str, float]] = {m: defaultdict(float) for m in (False, True)}
    now += INTERVAL
    world = worlds[modes[0]]
    world.advance(tick0 + args.ticks, now)
    store = world.store
    gc.disable()
    try:
        with store.evaluating():
            for rule in rules:
                t = time.perf_counter()
                evaluator(rule.kind)(rule, store, now)
                by_kind[False][rule.kind] += time.perf_counter() - t
        by_kind[True] = by_kind[False]  # every series, the same in both modes
    finally:
        gc.enable()
    out = []
    for mode in modes:
        d = durations[mode]
        rest = sorted(d[1:] or d)
        ratios = []
        if len(modes) > 1:
            ratios = [a / b for a, b in zip(durations[False][1:], durations[True][1:], strict=True)]
        out.append(
            {
                "case": case,
                "mode": "changed" if mode else "every",
                "setup": setup,
                "first": d[0],
                "median": median(rest),
                "p99": rest[min(len(rest) - 1, int(0.99 * len(rest)))],
                "max": rest[-1],
                "hold": max(holds[mode][1:] or holds[mode]),
                "hold_first": holds[mode][0],
                "rules_med": median(in_rules[mode]),
                "book_med": median([t - r for t, r in zip(d, in_rules[mode], strict=True)]),
                "samples": samples,
                "firing": sum(1 for a in books[mode].alerts.values() if a.state.value == "firing"),
                "by_kind": dict(by_kind[mode]),
                "window_mib": worlds[mode].store.window_bytes / 2**20,
                "speedup": median(ratios) if ratios else 1.0,
                "history": median(history_cpu[mode][1:] or history_cpu[mode]),
                "history_first": history_cpu[mode][0],
                "history_series": len(histories[mode]),
                "history_dropped": histories[mode].dropped,
                "history_mib": histories[mode].nbytes / 2**20,
                **(
                    {
                        "full": median(full_cpu[1:] or full_cpu),
                        "full_first": full_cpu[0],
                        "full_mib": in_full.nbytes / 2**20,
                        "same": _read(histories[mode]) == _read(in_full),
                    }
                    if mode
                    else {}
                ),
            }
        )
    return out


def _read(history: ValueHistory) -> list[tuple[Any, ...]]:
    return [(s.rule, s.labels, s.threshold, s.points) for s in history.series()]


def report(r: dict[str, Any]) -> None:
    ms = 1000.0
    print(
        f"{r['case']:>5} {r['mode']:<11} tick: median {r['median'] * ms:.1f} ms, "
        f"p99 {r['p99'] * ms:.1f} ms, max {r['max'] * ms:.1f} ms, first {r['first'] * ms:.1f} ms; "
        f"longest lock hold {r['hold'] * ms:.1f} ms (first tick {r['hold_first'] * ms:.1f} ms); "
        f"({r['samples']:,} samples, "
        f"{r['firing']} firing, windows {r['window_mib']:.1f} MiB, setup {r['setup']:.1f} s)",
        flush=True,
    )
    print(
        "      rules by kind: "
        + ", ".join(f"{k} {v * ms:.1f} ms" for k, v in sorted(r["by_kind"].items()))
        + f"; median split: rules {r['rules_med'] * ms:.1f} ms, "
        f"alert book {r['book_med'] * ms:.1f} ms",
        flush=True,
    )
    line = (
        f"      value history (CPU, record_parts as the app): median {r['history'] * ms:.1f} ms, "
        f"first {r['history_first'] * ms:.1f} ms ({r['history_series']:,} series kept, "
        f"{r['history_dropped']:,} samples dropped in all, {r['history_mib']:.1f} MiB)"
    )
    if "full" in r:
        line += (
            f"; every sample written (as before): median {r['full'] * ms:.1f} ms, first "
            f"{r['full_first'] * ms:.1f} ms, {r['full_mib']:.1f} MiB; "
            f"{r['full'] / r['history']:.1f}x; same history: "
            f"{'yes' if r['same'] else 'NO'}"
        )
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--series", type=int, default=10_000, help="task names in the store")
    p.add_argument("--rules", type=int, default=100)
    p.add_argument("--workers", type=int, default=200)
    p.add_argument("--ticks", type=int, default=20, help="timed ticks per case and mode")
    p.add_argument("--per-bucket", type=int, default=2, help="latency samples per bucket")
    targets = {"worst": (0.050, 0.100), "5%": (0.005, None)}
    p.add_argument("--cases", default="worst,5%", help="comma-separated: worst, 5%%")
    p.add_argument("--profile", action="store_true", help="cProfile the first case's ticks")
    p.add_argument(
        "--modes", choices=("both", "changed", "every"), default="both", help="what --profile runs"
    )
    args = p.parse_args(argv)
    args.profiler = None
    if args.rules < 10:
        p.error("--rules must be at least 10")
    if args.ticks < 2:
        p.error("--ticks must be at least 2")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if any(c not in ("worst", "5%") for c in cases):
        p.error("--cases: worst and/or 5%")

    if args.profile:
        import cProfile
        import pstats

        prof = args.profiler = cProfile.Profile()
        for r in run_case(args, cases[0]):
            report(r)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0

    print(
        f"evaluate: {args.rules} rules over {args.series:,} task series "
        f"({max(1, args.series // 100)} apps of 100 names), {args.workers} workers, 20 queues; "
        f"{args.ticks} ticks {INTERVAL:g} s apart per case; median and p99 without the first "
        "(cold) tick",
        flush=True,
    )
    for case in cases:
        before, after = run_case(args, case)
        report(before)
        report(after)
        med, p99 = targets[case]
        print(
            f"{case}: median {before['median'] * 1000:.1f} -> {after['median'] * 1000:.1f} ms, "
            f"p99 {before['p99'] * 1000:.1f} -> {after['p99'] * 1000:.1f} ms; every/changed "
            f"per tick (median of paired ticks) {after['speedup']:.2f}x; target median <= "
            f"{med * 1000:g} ms"
            + (f", p99 <= {p99 * 1000:g} ms" if p99 else "")
            + f": median is {after['median'] / med:.2f}x the budget",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
