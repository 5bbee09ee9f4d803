"""`sentinel eval`: evaluate the rules once against the live cluster and print a table."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from sentinel.cli.common import load_config
from sentinel.display import format_value, table
from sentinel.model import Labels


def cmd_eval(args: argparse.Namespace) -> int:
    from sentinel.app import Sentinel

    config = load_config(args)
    if config is None:
        return 1
    sentinel = Sentinel(config, persist=False)
    unreachable = _broker_error(sentinel.app)
    if unreachable is not None:
        print(f"sentinel eval: cannot reach the broker {unreachable}", file=sys.stderr)
        return 1
    # eval sends nothing and writes nothing: an "inactive -> firing" WARNING would read as if
    # an alert had fired. The table is the whole answer.
    quiet = _NoTransitions()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    sentinel.events.start()
    try:
        listen = 4.0 if args.listen is None else args.listen
        deadline = time.monotonic() + listen
        sentinel.events.connected.wait(min(listen, 10.0))
        sentinel.collect_once()
        time.sleep(max(0.0, deadline - time.monotonic()))
        _, rows = sentinel.evaluate()
        events_connected = sentinel.events.connected.is_set()  # stop() clears it
    finally:
        sentinel.events.stop()
        for handler in handlers:
            handler.removeFilter(quiet)
    problems = [
        f"{p.source}: {p.error}" for p in sentinel.store.probes.values() if not p.ok and p.error
    ]
    if not events_connected:
        problems.append("events: not connected")
    kinds = {rule.name: rule.kind for rule in config.rules}
    lines = [("RULE", "LABELS", "VALUE", "THRESHOLD", "STATE")]
    for row in rows:
        kind = kinds[row.rule]
        lines.append(
            (
                row.rule,
                _instance(row.labels),
                format_value(kind, row.value),
                format_value(kind, row.threshold),
                row.state,
            )
        )
    print("\n".join(table(lines)))
    if len(lines) == 1:
        print("(no rule produced a verdict)")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 0


class _NoTransitions(logging.Filter):
    """Drops alert-transition records (they carry `to_state`, see app.log_transition)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "to_state")


def _broker_error(app: Any, timeout: float = 10.0) -> str | None:
    """None when the broker accepts a connection, else "URL: reason" on one line (password
    masked)."""
    from kombu.utils.url import maybe_sanitize_url

    conn = app.connection_for_read()
    try:
        # Two attempts half a second apart: a refused port fails at once, a blackholed host
        # within the transport's connect timeout; eval is a one-shot and should say so fast.
        conn.ensure_connection(max_retries=1, interval_start=0.5, timeout=timeout)
    except Exception as e:  # kombu raises the transport's own errors as OperationalError
        reason = " ".join(str(e).split()) or type(e).__name__
        return f"{maybe_sanitize_url(str(app.conf.broker_url))}: {reason}"
    finally:
        conn.release()
    return None


def _instance(labels: Labels) -> str:
    keep = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    return ",".join(f"{k}={v}" for k, v in keep.items()) or "-"
