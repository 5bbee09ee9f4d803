"""Sustained ingest: a steady producer at a set rate while ticks and scrapes run.

A private redis-server with Redis's default PUB/SUB output-buffer limit (32 MiB at once, or
8 MiB for 60 s: past it Redis disconnects the subscriber and its events are lost, as in
production). A producer process (bench/_producer.py) publishes Celery's raw event messages at
`--rate` events/s for `--duration` s; `sentinel run` consumes them with the benchmark rules
(failure_rate, task_latency, no_live_workers over `*`) and its default 15 s evaluation, while
this script scrapes its /metrics every 5 s. Then, in the same run, a ladder of shorter runs
finds the highest rate each consumer sustains with zero loss: sentinel and the bare receiver
(Celery's own EventReceiver with a handler that only counts, bench/_bare.py).

Zero loss means: the subscriber's connection was never dropped (its client id stays in Redis's
CLIENT LIST), its output buffer (omem) never reached the 8 MiB soft limit, every published
event was counted (sentinel_events_total; sentinel_events_dropped stays 0), and the producer
kept to the rate (within 5%).

    .venv/bin/python bench/sustained.py [--rate 30000] [--duration 120] [--step 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from _common import (
    BENCH,
    PYTHON,
    Procs,
    Redis,
    cpu_seconds,
    median,
    proc_status,
    scrape,
    start_bare,
    start_redis,
    start_sentinel,
    wait_until,
)

SOFT_LIMIT = 8 * 1024 * 1024  # Redis's default pubsub soft limit (8 MiB for 60 s)


@dataclass
class Run:
    consumer: str
    rate: float
    duration: float
    published: int = 0
    achieved: float = 0.0
    counted: int = 0
    dropped: int = 0  # sentinel's own drops (sentinel_events_dropped)
    disconnected: bool = False
    max_omem: int = 0
    cpu: float = 0.0
    peak_rss: int = 0
    ticks: list[float] = field(default_factory=list)
    scrapes: list[float] = field(default_factory=list)
    drain: float = 0.0

    @property
    def lossless(self) -> bool:
        return (
            not self.disconnected
            and self.max_omem < SOFT_LIMIT
            and self.counted >= self.published
            and self.dropped == 0
            and self.achieved >= 0.95 * self.rate
        )

    def line(self) -> str:
        per_100k = self.cpu / max(self.counted, 1) * 100_000
        tick = ""
        if self.ticks:
            s = sorted(self.ticks)
            tick = (
                f", ticks {len(s)}: median {median(s) * 1000:.0f} ms "
                f"p99 {s[min(len(s) - 1, int(0.99 * len(s)))] * 1000:.0f} ms"
            )
        if self.scrapes:
            tick += f", scrape median {median(self.scrapes) * 1000:.0f} ms"
        return (
            f"{self.consumer:<8} {self.rate:>8,.0f}/s x {self.duration:g} s: published "
            f"{self.published:,} ({self.achieved:,.0f}/s), counted {self.counted:,}, "
            f"dropped {self.dropped}, subscriber {'DROPPED' if self.disconnected else 'kept'}, "
            f"max omem {self.max_omem / 2**20:.1f} MiB, drain {self.drain:.1f} s; "
            f"cpu {per_100k:.2f} s per 100k events, peak RSS {self.peak_rss / 2**20:.1f} MiB"
            f"{tick} -> {'zero loss' if self.lossless else 'LOSS'}"
        )


def run_one(procs: Procs, r: Redis, consumer: str, rate: float, duration: float, names: int) -> Run:
    run = Run(consumer, rate, duration)
    before = set(r.subscribers())
    c = start_sentinel(procs, r) if consumer == "sentinel" else start_bare(procs, r)
    mine = set(r.subscribers()) - before
    producer = subprocess.Popen(
        [PYTHON, str(BENCH / "_producer.py"), r.url, str(rate), str(duration), str(names)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=BENCH,
        start_new_session=True,
        env={**os.environ, "SENTINEL_BENCH_OWNER": str(procs.tmp)},
    )
    procs.children.append(producer)
    try:
        assert producer.stdout is not None and producer.stdin is not None
        producer.stdout.readline()  # the pool is built
        cpu0 = cpu_seconds(c.pid)
        stop = threading.Event()

        def watch() -> None:
            last_scrape = 0.0
            while not stop.is_set():
                subs = r.subscribers()
                if not mine & set(subs):
                    run.disconnected = True
                for cid in mine & set(subs):
                    run.max_omem = max(run.max_omem, subs[cid])
                if c.http and time.monotonic() - last_scrape >= 5.0:
                    last_scrape = time.monotonic()
                    tick = scrape(c.http + "/metrics", "sentinel_rule_evaluation_seconds")
                    run.scrapes.append(time.monotonic() - last_scrape)
                    if tick and (not run.ticks or tick != run.ticks[-1]):
                        run.ticks.append(tick)  # a new tick's duration (the gauge is the last)
                stop.wait(0.25)

        watcher = threading.Thread(target=watch, name="watch")
        watcher.start()
        producer.stdin.write(b"go\n")
        producer.stdin.flush()
        result = json.loads(producer.stdout.readline())
        producer.wait(10)
        run.published = result["events"]
        run.achieved = result["events"] / result["seconds"]
        done = time.monotonic()

        def caught_up() -> bool:
            return run.disconnected or (c.read() or 0) >= run.published

        with contextlib.suppress(TimeoutError):  # a consumer that fell behind: counted short
            wait_until(caught_up, 60, f"{consumer} to count every event", step=0.1)
        run.drain = time.monotonic() - done
        stop.set()
        watcher.join()
        run.cpu = cpu_seconds(c.pid) - cpu0
        run.peak_rss = proc_status(c.pid).get("VmHWM", 0)
        run.counted = int(c.read() or 0)
        if c.http:
            run.dropped = int(scrape(c.http + "/metrics", "sentinel_events_dropped_total") or 0)
            # The heartbeats and ticks it counts are in sentinel_events_total too: the
            # producer's events are all it was sent.
    finally:
        procs.stop(producer)  # type: ignore[arg-type]
        procs.stop(c.proc)
    return run


def ladder(
    procs: Procs, r: Redis, consumer: str, start: float, step: float, names: int, top: float
) -> tuple[float, list[Run]]:
    """Highest zero-loss rate found: up by 1.5x from start while lossless, else down by 1.5x."""
    runs = []
    rate = start
    best = 0.0
    first = run_one(procs, r, consumer, rate, step, names)
    runs.append(first)
    print("  " + first.line(), flush=True)
    going_up = first.lossless
    if going_up:
        best = rate
    for _ in range(4):
        rate = rate * 1.5 if going_up else rate / 1.5
        if rate > top:
            break
        run = run_one(procs, r, consumer, rate, step, names)
        runs.append(run)
        print("  " + run.line(), flush=True)
        if run.lossless:
            best = max(best, rate)
            if not going_up:
                break
        elif going_up:
            break
    return best, runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=30_000, help="events/s of the main run")
    p.add_argument("--duration", type=float, default=120, help="seconds of the main run")
    p.add_argument("--step", type=float, default=10, help="seconds of each ladder run")
    p.add_argument("--names", type=int, default=200, help="task names")
    p.add_argument("--top", type=float, default=200_000, help="highest rate the ladder tries")
    args = p.parse_args(argv)

    with Procs() as procs:
        r = start_redis(procs, bounded_pubsub=True)
        print(
            f"sustained: {args.rate:,.0f} events/s for {args.duration:g} s over {args.names} task "
            f"names into Redis with its default PUB/SUB limit; sentinel ticks every 15 s, "
            "/metrics scraped every 5 s",
            flush=True,
        )
        main_run = run_one(procs, r, "sentinel", args.rate, args.duration, args.names)
        print(main_run.line(), flush=True)
        print(f"ladder ({args.step:g} s a step), sentinel:", flush=True)
        best_s, _ = ladder(procs, r, "sentinel", args.rate, args.step, args.names, args.top)
        print("ladder, bare receiver:", flush=True)
        best_b, _ = ladder(procs, r, "bare", args.rate, args.step, args.names, args.top)
    print(
        f"highest zero-loss rate tried: sentinel {best_s:,.0f}/s, bare {best_b:,.0f}/s"
        + (f"; ratio sentinel/bare {best_s / best_b:.2f}x" if best_b else "")
    )
    print(f"main run at {args.rate:,.0f}/s: {'zero loss' if main_run.lossless else 'LOSS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
