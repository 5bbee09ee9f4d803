"""Event ingest throughput: sentinel against a bare Celery EventReceiver and Flower.

Each consumer in turn: start it on a private redis-server, wait until it has subscribed, warm
it up, SIGSTOP it, PUBLISH all N raw event messages (Redis buffers them for the stopped
subscriber), SIGCONT it and time until its own counter shows every event. Rounds alternate
the consumers so that drift in the machine's speed hits them alike; ratios are taken per round.

    .venv/bin/python bench/ingest.py [--n 100000] [--rounds 3]
    .venv/bin/python bench/ingest.py --record     # also sentinel with `record:` on, vs off
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import (
    STARTERS,
    Consumer,
    Procs,
    Redis,
    Stream,
    cpu_seconds,
    make_stream,
    median,
    mib,
    proc_status,
    publish,
    start_redis,
    start_sentinel,
    stopped,
    wait_until,
)


def start_recording(procs: Procs, r: Redis) -> Consumer:
    """sentinel with a rolling recording (`record:`), the way `sentinel run` keeps one."""
    folder = procs.tmp / f"recording-{time.monotonic_ns()}"
    return start_sentinel(procs, r, extra=f"record:\n  path: {folder}\n  keep: 1h\n")


STARTERS = {**STARTERS, "sentinel+record": start_recording}


def run_once(procs: Procs, r: Redis, name: str, stream: Stream, warm: Stream) -> dict[str, float]:
    c = STARTERS[name](procs, r)
    timeout = max(120.0, stream.events / 500)
    try:
        # The first events pay for lazy imports and first allocations; that is not throughput.
        publish(r, warm.messages)
        wait_until(lambda: (c.read() or 0) >= c.expected(warm), timeout, f"{name} warm-up")
        base = c.read() or 0
        target = base + c.expected(stream)
        with stopped(c.pid):
            publish(r, stream.messages)
            cpu0 = cpu_seconds(c.pid)
            t0 = time.perf_counter()
        if name != "bare":
            # Scrapes cost the consumer CPU: ask only once Redis has handed everything over.
            wait_until(lambda: r.pending_pubsub_bytes() == 0, timeout, f"{name} to drain", 0.01)
        wait_until(lambda: (c.read() or 0) >= target, timeout, f"{name} to count", 0.005)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(c.pid) - cpu0
        got = (c.read() or 0) - base
        status = proc_status(c.pid)
    finally:
        procs.stop(c.proc)
    return {
        "rate": stream.events / elapsed,
        "seconds": elapsed,
        "cpu": cpu,
        "per_cpu": stream.events / cpu if cpu else float("nan"),
        "hwm": status["VmHWM"],
        "counted": got,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="events per timed run")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each consumer")
    p.add_argument("--names", type=int, default=50, help="distinct task names")
    p.add_argument("--workers", type=int, default=4, help="simulated workers")
    p.add_argument("--batch", type=int, default=8, help="task events per task.multi message")
    p.add_argument("--consumers", default="bare,flower,sentinel", help="comma-separated")
    p.add_argument(
        "--record",
        action="store_true",
        help="sentinel with and without `record:` only (the recording's ingest overhead)",
    )
    args = p.parse_args(argv)
    names = [c for c in args.consumers.split(",") if c]
    if args.record:
        names = ["sentinel", "sentinel+record"]
    unknown = set(names) - set(STARTERS)
    if unknown:
        p.error(f"unknown consumer(s): {', '.join(sorted(unknown))}")

    stream = make_stream(args.n, names=args.names, workers=args.workers, batch=args.batch)
    warm = make_stream(
        max(200, min(5000, args.n // 20)), names=args.names, workers=args.workers, seed=2
    )
    print(
        f"ingest: {stream.events:,} events ({stream.task_events:,} task events over "
        f"{args.names} names and {args.workers} workers, {stream.heartbeats:,} heartbeats) "
        f"in {len(stream.messages):,} messages; {args.rounds} round(s), "
        f"{warm.events:,} warm-up events each",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    with Procs() as procs:
        r = start_redis(procs)
        for round_ in range(args.rounds):
            for name in names:
                res = run_once(procs, r, name, stream, warm)
                results[name].append(res)
                print(
                    f"  round {round_ + 1} {name:<9} {res['rate']:>10,.0f} events/s "
                    f"{res['seconds']:7.2f} s  cpu {res['cpu']:6.2f} s  "
                    f"peak RSS {mib(res['hwm'])} MiB",
                    flush=True,
                )

    print()
    print(f"{'consumer':<16}{'events/s':>12}{'events/CPU-s':>14}{'peak RSS MiB':>14}")
    for name in names:
        rs = results[name]
        print(
            f"{name:<16}{median([x['rate'] for x in rs]):>12,.0f}"
            f"{median([x['per_cpu'] for x in rs]):>14,.0f}"
            f"{mib(max(x['hwm'] for x in rs)):>14}"
        )
    if "sentinel+record" in results and "sentinel" in results:
        pairs = [
            r["rate"] / s["rate"]
            for r, s in zip(results["sentinel+record"], results["sentinel"], strict=True)
        ]
        cpu_pairs = [
            r["per_cpu"] / s["per_cpu"]
            for r, s in zip(results["sentinel+record"], results["sentinel"], strict=True)
        ]
        print(
            f"recording on/off: {median(pairs):.2f}x events/s "
            f"(rounds {', '.join(f'{x:.2f}' for x in pairs)}); "
            f"{median(cpu_pairs):.2f}x events per CPU-second"
        )
    if "sentinel" in results:
        for other in ("bare", "flower"):
            if other not in results:
                continue
            pairs = [
                s["rate"] / o["rate"]
                for s, o in zip(results["sentinel"], results[other], strict=True)
            ]
            cpu_pairs = [
                s["per_cpu"] / o["per_cpu"]
                for s, o in zip(results["sentinel"], results[other], strict=True)
            ]
            print(
                f"ratio sentinel/{other}: {median(pairs):.2f}x events/s "
                f"(rounds {', '.join(f'{x:.2f}' for x in pairs)}); "
                f"{median(cpu_pairs):.2f}x events per CPU-second"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
