"""Evaluation cost: one tick of 100 rules over 10,000 task series and 200 workers.

In-process, on a FakeClock: the fact store is filled for the longest window (10 minutes of
10-second buckets, every series busy in every bucket, with latency sketches), then 50 ticks are
timed, 15 s apart as with the default evaluation interval; between two ticks a new bucket of
traffic lands on every series (not timed), so every tick sees a full, fresh window.

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
import time
from collections import defaultdict

from _common import median

from sentinel.alerts.book import AlertBook
from sentinel.config import parse
from sentinel.facts.store import FactStore, TaskSeries
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--series", type=int, default=10_000, help="task names in the store")
    p.add_argument("--rules", type=int, default=100)
    p.add_argument("--workers", type=int, default=200)
    p.add_argument("--ticks", type=int, default=50)
    p.add_argument("--per-bucket", type=int, default=2, help="latency samples per bucket")
    args = p.parse_args(argv)
    if args.rules < 10:
        p.error("--rules must be at least 10")

    apps = max(1, args.series // 100)
    config = parse(rules_yaml(args.rules, apps, args.workers), env={})
    rules = config.rules
    store = FactStore(bucket=BUCKET, retention=config.max_window, max_task_names=args.series)
    rng = random.Random(5)

    setup = time.perf_counter()
    series = [
        s
        for i in range(args.series)
        if (s := store._series(f"app{i % apps}.tasks.t{i // apps}")) is not None
    ]
    now = T0
    for t in range(int(config.max_window // BUCKET) + 1):
        now = T0 + t * BUCKET
        fill(series, now, args.per_bucket, rng)

    def heartbeats(at: float) -> None:
        events = []
        for w in range(args.workers):
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
        store.apply_events(events, at)

    heartbeats(now)
    store.set_queue_depths(
        {f"{'high' if q % 5 == 0 else 'q'}{q}": (q * 100, 1) for q in range(20)}, {}, now
    )
    print(
        f"evaluate: {len(rules)} rules over {len(store.tasks):,} task series "
        f"({apps} apps of 100 names), {len(store.workers)} workers, {len(store.queues)} queues; "
        f"{args.ticks} ticks {INTERVAL:g} s apart; setup {time.perf_counter() - setup:.1f} s",
        flush=True,
    )

    book = AlertBook(None)
    durations = []
    in_rules = []
    samples = 0
    for _ in range(args.ticks):
        now += INTERVAL
        fill(series, now, args.per_bucket, rng)
        heartbeats(now)
        started = time.perf_counter()
        with gc_paused():  # as the app ticks
            _, rows = book.tick(rules, store, now)
        durations.append(time.perf_counter() - started)
        in_rules.append(book.last_rules_duration)
        samples = len(rows)

    # Where a tick goes: each rule's evaluator as in a tick (sharing window aggregates, with
    # the cyclic garbage collector paused as AlertBook.tick does).
    by_kind: dict[str, float] = defaultdict(float)
    gc.disable()
    try:
        with store.evaluating():
            for rule in rules:
                t = time.perf_counter()
                evaluator(rule.kind)(rule, store, now)
                by_kind[rule.kind] += time.perf_counter() - t
    finally:
        gc.enable()

    first = durations[0]  # cold: glob matches, label sets and fingerprints made once
    rules_med = median(in_rules)
    book_med = median([d - r for d, r in zip(durations, in_rules, strict=True)])
    durations.sort()
    med = median(durations)
    p99 = durations[min(len(durations) - 1, int(0.99 * len(durations)))]
    firing = sum(1 for a in book.alerts.values() if a.state.value == "firing")
    print(
        f"tick: median {med * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"min {durations[0] * 1000:.1f} ms, max {durations[-1] * 1000:.1f} ms "
        f"({samples:,} samples per tick, {firing} alerts firing)"
    )
    print(f"  first tick {first * 1000:.1f} ms (matches globs, makes every label set once)")
    print(
        "  one tick's rules by kind: "
        + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(by_kind.items()))
    )
    print(
        f"  median split of a tick: rules {rules_med * 1000:.1f} ms, "
        f"alert book {book_med * 1000:.1f} ms"
    )
    print(f"target 50 ms per tick: median is {med / 0.050:.2f}x the budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
