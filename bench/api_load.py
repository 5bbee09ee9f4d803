"""HTTP front under load: N concurrent GETs against `sentinel run`, with slowloris clients.

Starts a private redis-server and `sentinel run` on 127.0.0.1, opens `--slowloris` connections
that send half a request and then nothing, then fires `--n` GETs at once (one connection
each, rotating over /healthz, /api/v1/alerts, /api/v1/rules and /metrics) and reports refused
or failed connections, latency percentiles and the tracebacks in sentinel's log.

(Not named http.py: run as a script, bench/ is sys.path[0] and would shadow the stdlib's http.)
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from _common import HOST, Procs, start_redis, start_sentinel

PATHS = ("/healthz", "/api/v1/alerts", "/api/v1/rules", "/metrics")


@dataclass
class Flood:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)  # by exception type or status
    statuses: Counter[int] = field(default_factory=Counter)

    def percentile(self, p: float) -> float:
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(len(s) * p / 100))] if s else float("nan")


async def _get(host: str, port: int, path: str, timeout: float, out: Flood) -> None:
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                writer.write(request.encode())
                await writer.drain()
                data = await reader.read()  # Connection: close: the server ends the body
            finally:
                writer.close()
    except (OSError, TimeoutError) as e:
        out.errors[type(e).__name__] += 1
        return
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    out.statuses[status] += 1
    if status == 200:
        out.latencies.append(time.monotonic() - start)
    else:
        out.errors[f"status {status}"] += 1


async def _flood(host: str, port: int, n: int, timeout: float) -> Flood:
    out = Flood()
    await asyncio.gather(*(_get(host, port, PATHS[i % len(PATHS)], timeout, out) for i in range(n)))
    return out


def flood(host: str, port: int, n: int, timeout: float = 60.0) -> Flood:
    """N GETs started at once, each on its own connection."""
    return asyncio.run(_flood(host, port, n, timeout))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="concurrent GETs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--slowloris", type=int, default=50, help="half-request connections held open")
    args = p.parse_args(argv)

    with Procs() as procs:
        r = start_redis(procs)
        sentinel = start_sentinel(procs, r)
        port = int(sentinel.http.rsplit(":", 1)[1])
        print(
            f"api_load: {args.n} concurrent GETs x {args.rounds} round(s), "
            f"{args.slowloris} slowloris connection(s) held open",
            flush=True,
        )
        lazy = []
        for _ in range(args.slowloris):
            s = socket.create_connection((HOST, port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            lazy.append(s)
        results = []
        for i in range(args.rounds):
            f = flood(HOST, port, args.n)
            results.append(f)
            errors = ", ".join(f"{k} {v}" for k, v in sorted(f.errors.items())) or "none"
            print(
                f"  round {i + 1}: ok {len(f.latencies):,}/{args.n:,}  "
                f"p50 {f.percentile(50) * 1000:7.1f} ms  p99 {f.percentile(99) * 1000:7.1f} ms  "
                f"max {max(f.latencies, default=0) * 1000:7.1f} ms  errors: {errors}",
                flush=True,
            )
        for s in lazy:
            s.close()
        log = (procs.tmp / "sentinel.log").read_text(errors="replace")
        best = sorted(results, key=lambda f: f.percentile(99))[len(results) // 2]
        refused = sum(f.errors.get("ConnectionRefusedError", 0) for f in results)
        failed = sum(sum(f.errors.values()) for f in results)
        print(
            f"median round: p50 {best.percentile(50) * 1000:.1f} ms, "
            f"p99 {best.percentile(99) * 1000:.1f} ms, "
            f"max {max(best.latencies, default=0) * 1000:.1f} ms; "
            f"refused {refused}, failed {failed} of {args.n * args.rounds:,}; "
            f"tracebacks in sentinel's log: {log.count('Traceback')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
