"""Sentinel's evaluation tick against Prometheus's rule-group evaluation, on the same data.

A private redis-server, a steady producer (bench/_producer.py) publishing Celery events over
`--names` task names, and `sentinel run` with three rules, evaluated every 5 s; a private
Prometheus (Debian's `prometheus`) scrapes sentinel's /metrics every 5 s and evaluates the
equivalent rules every 5 s:

    sentinel                                 Prometheus
    failure_rate  * 5m > 5%                  sum by (name) (rate(celery_task_failed_total[5m]))
                                             / sum by (name) (rate(..succeeded..[5m])
                                                              + rate(..failed..[5m])) > 0.05
    task_latency  runtime p95 * 5m > 30s     histogram_quantile(0.95, sum by (name, le)
                                               (rate(celery_task_runtime_bucket[5m]))) > 30
    queue_backlog * > 1000                   celery_queue_length > 1000

Every 5 s both are sampled: sentinel_rule_evaluation_seconds (the last tick: every rule and
the alert book) from sentinel's /metrics, prometheus_rule_group_last_duration_seconds from
Prometheus's own. The figures are the medians after a warm-up, and their ratio.

    .venv/bin/python bench/prometheus_compare.py [--names 2000] [--rate 5000] [--duration 90]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from _common import (
    BENCH,
    HOST,
    PYTHON,
    Procs,
    free_port,
    http_ok,
    median,
    scrape,
    start_redis,
    start_sentinel,
    wait_until,
)

RULES = """
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["*"]
    window: 5m
    threshold: 5%
    min_count: 1
  - name: SlowRuntime
    kind: task_latency
    tasks: ["*"]
    measure: runtime
    percentile: 95
    threshold: 30s
    window: 5m
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 1000
"""

PROM_RULES = """groups:
  - name: sentinel-equivalent
    interval: {interval}s
    rules:
      - alert: TaskFailureRate
        expr: >-
          sum by (name) (rate(celery_task_failed_total[5m]))
          / (sum by (name) (rate(celery_task_succeeded_total[5m]))
             + sum by (name) (rate(celery_task_failed_total[5m]))) > 0.05
      - alert: SlowRuntime
        expr: >-
          histogram_quantile(0.95, sum by (name, le) (rate(celery_task_runtime_bucket[5m]))) > 30
      - alert: QueueBacklog
        expr: celery_queue_length > 1000
"""

PROM_CONFIG = """global:
  scrape_interval: {interval}s
  evaluation_interval: {interval}s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: sentinel
    metrics_path: /metrics
    static_configs: [{{targets: ["{target}"]}}]
"""


CHECKS = {
    "failure ratio": "sum by (name) (rate(celery_task_failed_total[5m]))"
    " / (sum by (name) (rate(celery_task_succeeded_total[5m]))"
    " + sum by (name) (rate(celery_task_failed_total[5m])))",
    "p95 runtime": "histogram_quantile(0.95, sum by (name, le)"
    " (rate(celery_task_runtime_bucket[5m])))",
    "queue length": "celery_queue_length",
}


def count(url: str, expr: str) -> int:
    """How many series an instant query of expr returns now."""
    query = urllib.parse.urlencode({"query": f"count({expr})"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as resp:
        result = json.load(resp)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", type=int, default=2000, help="task names")
    p.add_argument("--rate", type=float, default=5000, help="events/s from the producer")
    p.add_argument("--duration", type=float, default=90, help="seconds of traffic")
    p.add_argument("--warmup", type=float, default=30, help="seconds before sampling")
    p.add_argument("--interval", type=int, default=5, help="scrape and evaluation interval, s")
    args = p.parse_args(argv)
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus is not installed (apt-get install prometheus)", file=sys.stderr)
        return 2

    with Procs() as procs:
        r = start_redis(procs)
        c = start_sentinel(
            procs, r, rules=RULES, extra=f"evaluation:\n  interval: {args.interval}s\n"
        )
        target = c.http.removeprefix("http://")
        rules = procs.tmp / "rules.yml"
        rules.write_text(PROM_RULES.format(interval=args.interval))
        config = procs.tmp / "prometheus.yml"
        config.write_text(PROM_CONFIG.format(interval=args.interval, rules=rules, target=target))
        port = free_port()
        procs.start(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={procs.tmp / 'tsdb'}",
                f"--web.listen-address={HOST}:{port}",
                "--log.level=warn",
            ],
            "prometheus",
        )
        purl = f"http://{HOST}:{port}"
        try:
            wait_until(lambda: http_ok(purl + "/-/ready"), 60, "prometheus", step=0.2)
        except TimeoutError:
            print(procs.log("prometheus"), file=sys.stderr)
            raise
        producer = subprocess.Popen(
            [
                PYTHON,
                str(BENCH / "_producer.py"),
                r.url,
                str(args.rate),
                str(args.duration),
                str(args.names),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=BENCH,
            start_new_session=True,
            env={**os.environ, "SENTINEL_BENCH_OWNER": str(procs.tmp)},
        )
        procs.children.append(producer)
        assert producer.stdin is not None and producer.stdout is not None
        producer.stdout.readline()
        producer.stdin.write(b"go\n")
        producer.stdin.flush()
        print(
            f"prometheus_compare: {args.rate:,.0f} events/s over {args.names:,} task names for "
            f"{args.duration:g} s; both evaluate every {args.interval} s, Prometheus scrapes "
            f"sentinel every {args.interval} s; sampling after {args.warmup:g} s",
            flush=True,
        )
        started = time.monotonic()
        ours: list[float] = []
        theirs: list[float] = []
        series = 0.0
        while time.monotonic() - started < args.duration:
            time.sleep(args.interval)
            if time.monotonic() - started < args.warmup:
                continue
            tick = scrape(c.http + "/metrics", "sentinel_rule_evaluation_seconds")
            group = scrape(purl + "/metrics", "prometheus_rule_group_last_duration_seconds")
            series = scrape(purl + "/metrics", "prometheus_tsdb_head_series") or series
            if tick:
                ours.append(tick)
            if group:
                theirs.append(group)
        procs.stop(producer)  # type: ignore[arg-type]
        # What the rule expressions produce (without their thresholds): one element per task
        # name, or the comparison is of nothing.
        produced = {what: count(purl, expr) for what, expr in CHECKS.items()}
    if not ours or not theirs:
        print(f"no samples (sentinel {len(ours)}, prometheus {len(theirs)})", file=sys.stderr)
        return 1
    ms = 1000.0
    print(
        f"sentinel tick:          median {median(ours) * ms:7.2f} ms  max {max(ours) * ms:7.2f} ms"
        f"  ({len(ours)} samples)"
    )
    print(
        f"prometheus rule group:  median {median(theirs) * ms:7.2f} ms  "
        f"max {max(theirs) * ms:7.2f} ms  ({len(theirs)} samples, {series:,.0f} head series)"
    )
    print(
        "prometheus rule outputs (series, before thresholds): "
        + ", ".join(f"{k} {v:,}" for k, v in produced.items())
    )
    print(
        f"ratio sentinel tick / prometheus rule group: {median(ours) / median(theirs):.2f}x"
        " (medians)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
