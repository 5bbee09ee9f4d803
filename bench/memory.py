"""Memory bound: peak RSS while 1,000,000 events over 10,000 task names stream through.

The stream is published in steps of 100,000 events (generated step by step, the same for every
consumer); after each step the consumer is left to drain it, then its resident and peak
resident set (VmRSS, VmHWM) are read from /proc. Nothing asks the consumer anything until the
end: one Prometheus scrape then checks that every event was counted (and shows what a scrape
of 10,000 series costs on top).

    .venv/bin/python bench/memory.py [--n 1000000] [--names 10000] [--step 100000]
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import (
    MiB,
    Procs,
    Redis,
    make_stream,
    mib,
    proc_status,
    publish,
    start_flower,
    start_redis,
    start_sentinel,
    wait_drained,
)


def run(procs: Procs, r: Redis, name: str, args: argparse.Namespace) -> dict[str, object]:
    c = (start_sentinel if name == "sentinel" else start_flower)(procs, r)
    curve: list[tuple[int, int, int, float]] = []
    expected = 0
    sent = 0
    started = time.perf_counter()
    try:
        step = 0
        while sent < args.n:
            stream = make_stream(
                min(args.step, args.n - sent),
                names=args.names,
                workers=args.workers,
                seed=1000 + step,
            )
            publish(r, stream.messages)
            sent += stream.events
            expected += c.expected(stream)
            wait_drained(r, c, timeout=max(300.0, args.step / 200))
            status = proc_status(c.pid)
            curve.append((sent, status["VmRSS"], status["VmHWM"], time.perf_counter() - started))
            print(
                f"  {name:<9} {sent:>10,} events  RSS {mib(status['VmRSS']):>7} MiB  "
                f"peak {mib(status['VmHWM']):>7} MiB  ({curve[-1][3]:.0f} s)",
                flush=True,
            )
            step += 1
        counted = c.read() or 0
        after_scrape = proc_status(c.pid)["VmHWM"]
    finally:
        procs.stop(c.proc)
    return {
        "curve": curve,
        "counted": counted,
        "expected": expected,
        "after_scrape": after_scrape,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="events in all")
    p.add_argument("--names", type=int, default=10_000, help="distinct task names")
    p.add_argument("--step", type=int, default=100_000, help="events between samples")
    p.add_argument("--workers", type=int, default=4, help="simulated workers")
    p.add_argument("--consumers", default="sentinel,flower", help="comma-separated")
    args = p.parse_args(argv)
    names = [c for c in args.consumers.split(",") if c]
    if set(names) - {"sentinel", "flower"}:
        p.error("consumers: sentinel and/or flower")

    print(
        f"memory: {args.n:,} events over {args.names:,} task names and {args.workers} workers, "
        f"sampled every {args.step:,} events",
        flush=True,
    )
    results = {}
    with Procs() as procs:
        r = start_redis(procs)
        for name in names:
            results[name] = run(procs, r, name, args)

    print()
    half = args.n // 2
    for name, res in results.items():
        curve = res["curve"]
        assert isinstance(curve, list)
        peak = curve[-1][2]
        # "Warm-up" is the first half: by then every name has its series.
        mid = next((hwm for sent, _, hwm, _ in curve if sent >= half), curve[0][2])
        print(f"{name}: peak RSS curve (MiB, every {args.step:,} events):")
        print("  " + " ".join(mib(hwm) for _, _, hwm, _ in curve))
        print(
            f"  peak {mib(peak)} MiB after {curve[-1][0]:,} events; growth over the second half "
            f"{(peak - mid) / MiB:+.1f} MiB ({(peak - mid) / max(mid, 1):+.1%}); "
            f"{res['counted']:,.0f}/{res['expected']:,} events counted; "
            f"peak {mib(res['after_scrape'])} MiB after one /metrics scrape; "
            f"{curve[-1][3]:.0f} s"
        )
    if "sentinel" in results and "flower" in results:
        s = results["sentinel"]["curve"][-1][2]  # type: ignore[index]
        f = results["flower"]["curve"][-1][2]  # type: ignore[index]
        print(f"ratio flower/sentinel peak RSS: {f / s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
