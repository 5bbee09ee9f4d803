"""Peak RSS of sentinel while /metrics is scraped, at 1,000 and 10,000 task names.

For each size, a fresh `sentinel run` on a private redis-server is sent enough Celery events
(bench/_common.make_stream) that every task name has counters and latency histograms, and left
to go idle. Then its peak RSS is reset (`echo 5 > /proc/PID/clear_refs`, so VmHWM restarts at
the current RSS) and /metrics is scraped `--scrapes` times: the growth of the peak over the
RSS just before is what a scrape costs. Both sizes run in the same process, one after the other.
Evaluation is set to run hourly, and the stream's workers (which stop heartbeating when it ends)
are left to die first, so that no tick (which at 10,000 series allocates on its own; the death
triggers one through the liveness watch) falls inside the measured window: the figure is the
scrape's alone.

    .venv/bin/python bench/scrape.py [--names 1000,10000] [--scrapes 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path

from _common import (
    Procs,
    make_stream,
    mib,
    proc_status,
    publish,
    start_redis,
    start_sentinel,
    wait_drained,
)


def reset_peak(pid: int) -> bool:
    """Restart VmHWM at the current RSS; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def one(names: int, scrapes: int) -> str:
    with Procs() as procs:
        r = start_redis(procs)
        c = start_sentinel(procs, r, extra="evaluation: {interval: 1h}")
        stream = make_stream(max(8 * names, 20_000), names=names, workers=4, seed=7)
        publish(r, stream.messages)
        wait_drained(r, c, timeout=120)
        time.sleep(2 * 2.0 + 2)  # the workers' 2 x freq, then the liveness watch's tick
        wait_drained(r, c, timeout=120)
        status = proc_status(c.pid)
        resettable = reset_peak(c.pid)
        before = proc_status(c.pid)["VmRSS"]
        size = 0
        took = []
        for _ in range(scrapes):
            t = time.perf_counter()
            with urllib.request.urlopen(c.http + "/metrics", timeout=120) as resp:
                size = len(resp.read())
            took.append(time.perf_counter() - t)
        after = proc_status(c.pid)
        peak = after["VmHWM"] if resettable else max(after["VmHWM"], status["VmHWM"])
        return (
            f"{names:>6,} names: RSS before {mib(before)} MiB, peak during {scrapes} scrapes "
            f"{mib(peak)} MiB (+{mib(peak - before)} MiB); body {size / 2**20:.1f} MiB, "
            f"scrape {min(took) * 1000:.0f}-{max(took) * 1000:.0f} ms"
            + ("" if resettable else " (peak not resettable: includes ingest)")
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", default="1000,10000", help="comma-separated task-name counts")
    p.add_argument("--scrapes", type=int, default=3)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.names.split(",") if n.strip()]
    print(f"scrape: peak RSS of sentinel during {args.scrapes} /metrics scrapes", flush=True)
    for n in sizes:
        print(one(n, args.scrapes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
