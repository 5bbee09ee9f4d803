"""Detection latency: from a real failure to the page arriving at a webhook.

A private redis-server, one real `celery worker -E`, `sentinel run` with the default intervals
(evaluation every 15 s, inspect every 30 s, group_wait 10 s; a worker whose heartbeat
deadline passes is evaluated at once) and a local webhook receiver:

1. failure rate: `bench.fail` tasks are sent 20 a second; timed from the first one sent to the
   TaskFailureRate page (threshold 5%, min_count 20: the rule needs 20 finished tasks).
2. worker death: the worker is SIGKILLed (no worker-offline event); timed to the NoLiveWorkers
   page. Celery's liveness rule says a worker is dead 2 x its heartbeat interval (2 s) after its
   last heartbeat; the rest is the evaluation interval and the route's group_wait.

Each figure is split into "firing" (when sentinel's alert started firing, from startsAt) and
"page" (when the webhook received it). `--fast` shortens every interval to about a second (the
test suite's smoke run); the default is what a user gets without tuning.

    .venv/bin/python bench/detect.py [--fast]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _common import (
    HOST,
    PYTHON,
    Procs,
    free_port,
    scrape,
    start_redis,
    start_sentinel,
    wait_until,
)

RULES = """
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["bench.*"]
    window: 5m
    threshold: 5%
    min_count: 20
    severity: error
  - name: NoLiveWorkers
    kind: no_live_workers
    severity: critical
"""


class Webhook:
    """Records (arrival time, alert) for every firing alert it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with outer.lock:
                    for alert in payload.get("alerts", []):
                        outer.received.append((at, alert))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/hook"

    def page(self, alertname: str, after: float) -> tuple[float, dict[str, Any]] | None:
        with self.lock:
            for at, alert in self.received:
                firing = alert.get("status") == "firing"
                if at >= after and firing and alert.get("labels", {}).get("alertname") == alertname:
                    return at, alert
        return None

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _starts_at(alert: dict[str, Any]) -> float:
    return datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fast", action="store_true", help="short intervals (for a quick smoke run)")
    p.add_argument("--rate", type=float, default=20.0, help="failing tasks sent per second")
    p.add_argument("--timeout", type=float, default=180.0, help="give up on a page after this")
    args = p.parse_args(argv)

    from celery import Celery

    with Procs() as procs, Webhook() as hook:
        r = start_redis(procs)
        lines = []
        if args.fast:
            lines.append("evaluation: {interval: 1s}")
        lines += ["route:", "  channels: [hook]", "  group_by: [alertname]"]
        if args.fast:
            lines.append("  group_wait: 1s")
        lines += ["channels:", f'  hook: {{type: webhook, url: "{hook.url}"}}']
        worker = procs.start(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "bench.celeryapp",
                "worker",
                "-E",
                "-P",
                "solo",
                "-n",
                "bench1@%h",
                "--loglevel=warning",
            ],
            "worker",
            env={"SENTINEL_BENCH_BROKER": r.url},
        )
        sentinel = start_sentinel(procs, r, rules=RULES, extra="\n".join(lines))
        url = f"{sentinel.http}/metrics"
        print(
            f"detect: {'fast intervals' if args.fast else 'default intervals'}; "
            f"one worker (-P solo), webhook channel",
            flush=True,
        )
        wait_until(
            lambda: worker.poll() is None and (scrape(url, "celery_worker_up") or 0) >= 1,
            60,
            "sentinel to see the worker alive",
            step=0.2,
        )

        # 1. failure rate
        app = Celery("bench_producer", broker=r.url, set_as_current=False)
        first = time.time()
        sent = 0
        deadline = first + args.timeout
        with app.producer_or_acquire() as producer:
            while (page := hook.page("TaskFailureRate", first)) is None:
                if time.time() > deadline:
                    raise TimeoutError(f"no TaskFailureRate page in {args.timeout:g}s")
                due = first + sent / args.rate
                if time.time() >= due:
                    app.send_task("bench.fail", args=[sent], producer=producer)
                    sent += 1
                time.sleep(0.005)
        fr_page, fr_alert = page
        fr_firing = _starts_at(fr_alert)
        print(
            f"failure rate: first failing task -> firing {fr_firing - first:5.1f} s, "
            f"-> page {fr_page - first:5.1f} s ({sent} tasks sent at {args.rate:g}/s)",
            flush=True,
        )

        # 2. worker death
        killed = time.time()
        os.kill(worker.pid, signal.SIGKILL)
        page = wait_until(lambda: hook.page("NoLiveWorkers", killed), args.timeout, "page", 0.05)
        nl_page, nl_alert = page
        nl_firing = _starts_at(nl_alert)
        print(
            f"worker death: SIGKILL -> firing {nl_firing - killed:5.1f} s, "
            f"-> page {nl_page - killed:5.1f} s (target 20 s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
