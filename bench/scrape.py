"""/metrics at 1,000 and 10,000 task names: wall and CPU time per scrape, and peak RSS, with
the per-task families written as text (as served) and, in the same run, as prometheus_client's
Sample objects (`exposition.WRITE_LINES = False`: the baseline, how /metrics was made before).

For each size, two fresh `sentinel run`, `lines` and `objects`, each on a private redis-server,
are sent the same Celery events (bench/_common.make_stream), enough that every task name has
counters and latency histograms, and left to go idle. Then their peak RSS is reset (`echo 5 >
/proc/PID/clear_refs`, so VmHWM restarts at the current RSS) and each is scraped `--scrapes`
times two ways, `text` (no Accept header, no gzip: curl's) and `prometheus` (what Prometheus
2.x asks: OpenMetrics, gzip), alternating between the two, so that machine load falls on both
alike: only one of them works at a time. Per scrape: wall time from the request to the last
byte, and the server's CPU time (utime + stime from /proc, 10 ms ticks). The growth of the peak
over the RSS just before is what a scrape costs. Evaluation is set to run hourly, and the
stream's workers (which stop heartbeating when it ends) are left to die first, so that no tick
falls inside the measured window: the figures are the scrapes' alone. The two answers' per-task
lines are compared: the same events must give the same lines.

    .venv/bin/python bench/scrape.py [--names 1000,10000] [--scrapes 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    Consumer,
    Procs,
    cpu_seconds,
    make_stream,
    median,
    mib,
    proc_status,
    publish,
    start_redis,
    start_sentinel,
    wait_drained,
)

# The baseline: the same daemon, its sliced families made of the library's objects again.
OBJECTS = (
    "-c",
    "import sys; from sentinel.api import exposition; exposition.WRITE_LINES = False; "
    "from sentinel.cli import main; sys.exit(main())",
)
# What Prometheus 2.x (Debian's 2.42 among them) sends with every scrape.
PROMETHEUS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
WAYS: dict[str, dict[str, str]] = {"text": {}, "prometheus": PROMETHEUS}


@dataclass
class Runs:
    """One daemon's scrapes of one way: wall and CPU seconds each."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"wall {median(self.wall) * 1000:,.0f} ms (max {max(self.wall) * 1000:,.0f}), "
            f"CPU {median(self.cpu) * 1000:,.0f} ms"
        )


def reset_peak(pid: int) -> bool:
    """Restart VmHWM at the current RSS; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def scrape(c: Consumer, headers: dict[str, str], runs: Runs) -> bytes:
    """One scrape, timed; the body as served (gzip still on)."""
    request = urllib.request.Request(c.http + "/metrics", headers=headers)
    cpu, t = cpu_seconds(c.pid), time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as resp:
        body: bytes = resp.read()
    runs.wall.append(time.perf_counter() - t)
    runs.cpu.append(cpu_seconds(c.pid) - cpu)
    return body


def task_lines(body: bytes) -> str:
    """A digest of the per-task families' sample lines, and their number."""
    lines = [line for line in body.splitlines() if line.startswith(b"celery_task_")]
    digest = hashlib.sha256(b"\n".join(lines)).hexdigest()[:12]
    return f"{len(lines):,} lines {digest}"


def unzipped(body: bytes, way: str) -> bytes:
    return zlib.decompress(body, 16 + zlib.MAX_WBITS) if WAYS[way] is PROMETHEUS else body


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def one(names: int, scrapes: int) -> list[str]:
    with Procs() as procs:
        # A redis-server each: a second subscriber to the same pattern would not show in
        # PUBSUB NUMPAT, which start_sentinel waits on.
        brokers = {"lines": start_redis(procs), "objects": start_redis(procs)}
        extra = "evaluation: {interval: 1h}"
        daemons = {
            "lines": start_sentinel(procs, brokers["lines"], name="lines", extra=extra),
            "objects": start_sentinel(
                procs, brokers["objects"], name="objects", python=OBJECTS, extra=extra
            ),
        }
        stream = make_stream(max(8 * names, 20_000), names=names, workers=4, seed=7)
        for r in brokers.values():
            publish(r, stream.messages)
        for k, c in daemons.items():
            wait_drained(brokers[k], c, timeout=240)
        time.sleep(2 * 2.0 + 2)  # the workers' 2 x freq, then the liveness watch's tick
        for k, c in daemons.items():
            wait_drained(brokers[k], c, timeout=240)
        status = {k: proc_status(c.pid) for k, c in daemons.items()}
        resettable = all(reset_peak(c.pid) for c in daemons.values())
        before = {k: proc_status(c.pid)["VmRSS"] for k, c in daemons.items()}
        runs = {(k, way): Runs() for k in daemons for way in WAYS}
        bodies: dict[tuple[str, str], bytes] = {}
        started = load()
        for _ in range(scrapes):
            for way, headers in WAYS.items():
                for k, c in daemons.items():
                    bodies[k, way] = scrape(c, headers, runs[k, way])
        ended = load()
        peak = {}
        for k, c in daemons.items():
            after = proc_status(c.pid)
            peak[k] = after["VmHWM"] if resettable else max(after["VmHWM"], status[k]["VmHWM"])
    size = len(bodies["lines", "text"])
    zipped = len(bodies["lines", "prometheus"])
    same = all(
        task_lines(unzipped(bodies["lines", way], way))
        == task_lines(unzipped(bodies["objects", way], way))
        for way in WAYS
    )
    out = [
        f"{names:>6,} names: RSS before {mib(before['lines'])} MiB, peak during {scrapes} scrapes "
        f"{mib(peak['lines'])} MiB (+{mib(peak['lines'] - before['lines'])} MiB; objects: "
        f"+{mib(peak['objects'] - before['objects'])} MiB); body {size / 2**20:.1f} MiB "
        f"({zipped / 2**20:.1f} MiB gzipped), per-task {task_lines(bodies['lines', 'text'])}"
        + ("" if resettable else " (peak not resettable: includes ingest)")
    ]
    for way in WAYS:
        lines, objects = runs["lines", way], runs["objects", way]
        out.append(
            f"        {way:<10} lines: {lines}; objects: {objects}; "
            f"x{median(objects.wall) / median(lines.wall):.1f} wall"
        )
    out.append(
        f"        {started} at the first scrape, {ended} at the last; per-task lines "
        + ("identical" if same else "DIFFER")
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", default="1000,10000", help="comma-separated task-name counts")
    p.add_argument("--scrapes", type=int, default=3)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.names.split(",") if n.strip()]
    print(
        f"scrape: sentinel's /metrics, {args.scrapes} scrapes each way, per-task families as "
        f"text (lines) and as the library's objects (objects, the baseline), same run; "
        f"{load()} on {os.cpu_count()} CPUs",
        flush=True,
    )
    for n in sizes:
        print("\n".join(one(n, args.scrapes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
