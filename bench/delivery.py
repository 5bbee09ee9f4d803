"""Page latency per group when the receiver is slow: one webhook that holds every request.

A private redis-server, `sentinel run` and a local webhook that answers each request only
after `--hold` seconds (5 s: a receiver behind a slow proxy, a rate-limited API). `--groups`
queues (10) get a backlog at the same moment, so QueueBacklog fires for all of them in one
evaluation (`group_by: [alertname, queue]`: one group, one page per queue). Timed per group,
from the alert's startsAt (when it began firing) to the request arriving at the webhook.

Each run measures its own baseline: the same incident with `max_in_flight: 1` on the channel,
which is how delivery worked before (one sender per channel serving every group in turn), and
then with the default cap (16 sends in flight per channel, each for a different group).

    .venv/bin/python bench/delivery.py [--groups 10] [--hold 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import HOST, Procs, free_port, median, start_redis, start_sentinel, wait_until


class SlowWebhook:
    """Records (arrival time, body) of every request, then holds it `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.received: list[tuple[float, float, dict[str, Any]]] = []  # arrived, answered, body
        self.lock = threading.Lock()
        self.closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                outer.closing.wait(outer.hold)
                with outer.lock:
                    outer.received.append((at, time.time(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # every group's connection at once, none refused

        self.server = Server((HOST, free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/hook"

    def pages(self) -> dict[str, tuple[float, float, float]]:
        """Per queue: (startsAt, arrival, answer) of its first firing page."""
        out: dict[str, tuple[float, float, float]] = {}
        with self.lock:
            for at, answered, body in self.received:
                if body.get("status") != "firing":
                    continue
                for alert in body.get("alerts", []):
                    queue = alert.get("labels", {}).get("queue")
                    if queue and queue not in out:
                        out[queue] = (_starts_at(alert), at, answered)
        return out

    def __enter__(self) -> SlowWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


def _starts_at(value: dict[str, Any]) -> float:
    return datetime.fromisoformat(value["startsAt"].replace("Z", "+00:00")).timestamp()


def run(
    groups: int, hold: float, cap: int | None, timeout: float
) -> tuple[list[float], list[float]]:
    """One incident; each group's startsAt -> page arrival, and -> page answered (delivered)."""
    queues = [f"bench-q{i}" for i in range(groups)]
    with Procs() as procs, SlowWebhook(hold) as hook:
        r = start_redis(procs)
        cap_line = f", max_in_flight: {cap}" if cap is not None else ""
        extra = f"""
            evaluation: {{interval: 1s}}
            route:
              channels: [hook]
              group_by: [alertname, queue]
              group_wait: 0s
              group_interval: 1m
            channels:
              hook: {{type: webhook, url: "{hook.url}", timeout: {hold + 30:g}s{cap_line}}}
            """
        rules = """
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["bench-q*"]
    threshold: 1
"""
        start_sentinel(procs, r, rules=rules, extra=extra, queues=queues)
        with r.client.pipeline() as pipe:
            for q in queues:
                pipe.lpush(q, "x", "y")  # depth 2 > threshold 1, in one round trip for all
            pipe.execute()
        wait_until(lambda: len(hook.pages()) >= groups, timeout, "every group's page", 0.05)
        pages = hook.pages().values()
        return sorted(at - s for s, at, _ in pages), sorted(done - s for s, _, done in pages)


def report(label: str, latencies: list[float]) -> str:
    figures = " ".join(f"{x:.1f}" for x in latencies)
    return (
        f"  {label:<9} first {latencies[0]:5.1f} s  median {median(latencies):5.1f} s  "
        f"last {latencies[-1]:5.1f} s   per group: {figures}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--groups", type=int, default=10, help="groups firing at once")
    p.add_argument("--hold", type=float, default=5.0, help="seconds the webhook holds a request")
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this")
    args = p.parse_args(argv)

    print(
        f"delivery: {args.groups} groups fire at once to one webhook that holds each request "
        f"{args.hold:g} s; startsAt -> page per group (arrival order)",
        flush=True,
    )
    results = {}
    for label, cap in (("max_in_flight: 1 (one send at a time: before)", 1), ("default", None)):
        arrived, answered = results[label] = run(args.groups, args.hold, cap, args.timeout)
        print(label, flush=True)
        print(report("arrives", arrived), flush=True)
        print(report("answered", answered), flush=True)
    (_, before), (_, after) = results.values()
    print(
        f"last group's page answered: {before[-1]:.1f} s -> {after[-1]:.1f} s "
        f"({before[-1] / max(after[-1], 0.01):.1f}x sooner)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
