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

Prometheus also scrapes itself; at the end both durations are read back from it over the run
after a warm-up: sentinel_rule_evaluation_seconds (sentinel's last tick: every rule and the
alert book) and prometheus_rule_group_last_duration_seconds. The figures are their medians
(quantile_over_time) and the ratio; nothing else scrapes sentinel while it runs.

    .venv/bin/python bench/prometheus_compare.py [--names 1000] [--rate 3000] [--duration 90]
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
    scrape_timeout: {interval}s
    static_configs: [{{targets: ["{target}"]}}]
  - job_name: prometheus
    static_configs: [{{targets: ["{own}"]}}]
"""


CHECKS = {
    "failure ratio": "sum by (name) (rate(celery_task_failed_total[5m]))"
    " / (sum by (name) (rate(celery_task_succeeded_total[5m]))"
    " + sum by (name) (rate(celery_task_failed_total[5m])))",
    "p95 runtime": "histogram_quantile(0.95, sum by (name, le)"
    " (rate(celery_task_runtime_bucket[5m])))",
    "queue length": "celery_queue_length",
}


def value(url: str, expr: str) -> float | None:
    """The first element of an instant query of expr, or None if it returns nothing."""
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def count(url: str, expr: str) -> int:
    """How many series an instant query of expr returns now."""
    return int(value(url, f"count({expr})") or 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", type=int, default=1000, help="task names")
    p.add_argument("--rate", type=float, default=3000, help="events/s from the producer")
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
        port = free_port()
        config.write_text(
            PROM_CONFIG.format(
                interval=args.interval, rules=rules, target=target, own=f"{HOST}:{port}"
            )
        )
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
        # Nothing here scrapes sentinel (a scrape of 2,000 names is work it would count): both
        # durations are read back from Prometheus, which scrapes sentinel and itself.
        time.sleep(args.duration)
        span = f"{max(args.interval * 2, int(args.duration - args.warmup))}s"
        ours = value(purl, f"quantile_over_time(0.5, sentinel_rule_evaluation_seconds[{span}])")
        ours_max = value(purl, f"max_over_time(sentinel_rule_evaluation_seconds[{span}])")
        group = 'prometheus_rule_group_last_duration_seconds{rule_group=~".*sentinel-equivalent"}'
        theirs = value(purl, f"quantile_over_time(0.5, {group}[{span}])")
        theirs_max = value(purl, f"max_over_time({group}[{span}])")
        up = value(purl, f'avg_over_time(up{{job="sentinel"}}[{span}])')
        took = value(
            purl, f'quantile_over_time(0.5, scrape_duration_seconds{{job="sentinel"}}[{span}])'
        )
        series = value(purl, "prometheus_tsdb_head_series")
        # What the rule expressions produce (without their thresholds): one element per task
        # name, or the comparison is of nothing.
        produced = {what: count(purl, expr) for what, expr in CHECKS.items()}
        procs.stop(producer)  # type: ignore[arg-type]
    if ours is None or theirs is None:
        print(f"no samples (sentinel {ours}, prometheus {theirs})", file=sys.stderr)
        return 1
    ms = 1000.0
    print(
        f"sentinel tick:          median {ours * ms:8.2f} ms  max {(ours_max or 0) * ms:8.2f} ms"
        f"  (sentinel_rule_evaluation_seconds over the last {span})"
    )
    print(
        f"prometheus rule group:  median {theirs * ms:8.2f} ms  "
        f"max {(theirs_max or 0) * ms:8.2f} ms  ({series or 0:,.0f} head series)"
    )
    print(
        f"prometheus scraping sentinel: up {up or 0:.2f}, scrape median {(took or 0) * ms:.0f} ms"
    )
    print(
        "prometheus rule outputs (series, before thresholds): "
        + ", ".join(f"{k} {v:,}" for k, v in produced.items())
    )
    print(f"ratio sentinel tick / prometheus rule group: {ours / theirs:.2f}x (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
