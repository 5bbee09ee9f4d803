"""Scrape-time metrics: values read from a filled fact store, parsed back as Prometheus text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import HISTOGRAM_BOUNDS
from sentinel.facts.windows import COUNTERS
from sentinel.metrics.facts import FactsCollector
from tests.helpers import T0

W1, W2 = "w1@host", "w2@host"

CONFIG = """
celery:
  broker_url: redis://127.0.0.1:6379/9
storage:
  path: {path}
limits:
  worker_retention: 60s
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    min_workers: 5
    severity: critical
  - name: QueueBacklog
    kind: queue_backlog
    threshold: 10
    for: 5m
channels:
  hook:
    type: webhook
    url: http://127.0.0.1:9/hook
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": T0, **fields}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sentinel(tmp_path: Path, clock: FakeClock) -> Any:
    config = parse(CONFIG.format(path=tmp_path / "sentinel.db"), env={})
    s = Sentinel(config, clock)
    yield s
    if s.db is not None:
        s.db.close()


@pytest.fixture
def registry(sentinel: Sentinel) -> CollectorRegistry:
    return sentinel.metrics_registry()


def scrape(registry: CollectorRegistry) -> tuple[str, Samples, dict[str, str]]:
    text = generate_latest(registry).decode()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples, types


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, tuple(sorted(labels.items()))))


def total(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The sum over the samples that carry these labels (PromQL's `sum by`); None if none."""
    want = set(labels.items())
    hits = [v for (m, ls), v in samples.items() if m == metric and want <= set(ls)]
    return sum(hits) if hits else None


def fill(s: Sentinel, clock: FakeClock) -> None:
    now = clock.now()
    s.store.apply_events(
        [
            ev("worker-online", hostname=W1, freq=2.0),
            ev("worker-heartbeat", hostname=W1, freq=2.0, active=1, processed=0),
            ev("worker-heartbeat", hostname=W2, freq=2.0, active=3, processed=7),
            # u1: sent -> received -> started 0.3 s later -> succeeded in 0.3 s
            ev("task-sent", uuid="u1", name="app.add"),
            ev("task-received", uuid="u1", name="app.add", hostname=W1),
            ev("task-started", uuid="u1", hostname=W1, timestamp=T0 + 0.3),
            ev("task-succeeded", uuid="u1", hostname=W1, timestamp=T0 + 0.6, runtime=0.3),
            # u2: received -> started 20 s later -> failed after 45 s
            ev("task-received", uuid="u2", name="app.add", hostname=W1),
            ev("task-started", uuid="u2", hostname=W1, timestamp=T0 + 20),
            ev("task-failed", uuid="u2", hostname=W1, timestamp=T0 + 65, runtime=45.0),
            ev("task-sent", uuid="u3", name="app.mul"),
            ev("task-retried", uuid="u4", name="app.mul", hostname=W1),
            ev("worker-unknown-kind", hostname=W1),
            {"type": "task-started", "uuid": ""},  # malformed
        ],
        now,
    )
    s.store.probe_ok("inspect", now - 5)
    s.store.probe_ok("queues", now - 1)
    s.store.set_queue_depths({"celery": (42, 2), "slow": (3, None)}, {}, now)
    s.store.set_queue_depths({"fresh": (1, 1)}, {}, now)
    s.store.set_queue_depths({}, {"fresh": "ResponseError: WRONGTYPE"}, now)


def test_celery_task_counters_by_name(sentinel: Sentinel, clock: FakeClock, registry: Any) -> None:
    fill(sentinel, clock)
    _, samples, types = scrape(registry)

    expected = {
        "app.add": {"sent": 1, "received": 2, "started": 2, "succeeded": 1, "failed": 1},
        "app.mul": {"sent": 1, "retried": 1},
    }
    for name, counts in expected.items():
        for counter in COUNTERS:
            family = f"celery_task_{counter}"
            assert types[family] == "counter"
            assert total(samples, f"{family}_total", name=name) == counts.get(counter, 0), (
                family,
                name,
            )


def test_celery_histograms_are_cumulative_with_sum(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    fill(sentinel, clock)
    _, samples, types = scrape(registry)
    assert types["celery_task_runtime"] == "histogram"
    assert types["celery_task_queue_wait_time"] == "histogram"

    def bucket(family: str, le: float | str) -> float | None:
        le_text = "+Inf" if le == "+Inf" else str(float(le))
        return total(samples, f"{family}_bucket", name="app.add", le=le_text)

    # runtime: 0.3 s and 45 s (celery-exporter's buckets end at 10 s)
    assert bucket("celery_task_runtime", 0.25) == 0
    assert bucket("celery_task_runtime", 0.5) == 1
    assert bucket("celery_task_runtime", 10) == 1
    assert bucket("celery_task_runtime", "+Inf") == 2
    assert total(samples, "celery_task_runtime_count", name="app.add") == 2
    assert total(samples, "celery_task_runtime_sum", name="app.add") == pytest.approx(45.3)
    # queue wait: 0.3 s (sent -> started) and 20 s (received -> started)
    assert bucket("celery_task_queue_wait_time", 0.25) == 0
    assert bucket("celery_task_queue_wait_time", 0.5) == 1
    assert bucket("celery_task_queue_wait_time", 10) == 1
    assert bucket("celery_task_queue_wait_time", "+Inf") == 2
    assert total(samples, "celery_task_queue_wait_time_sum", name="app.add") == pytest.approx(20.3)
    buckets = {
        dict(k[1])["le"]
        for k in samples
        if k[0] == "celery_task_runtime_bucket" and ("name", "app.add") in k[1]
    }
    assert len(buckets) == len(HISTOGRAM_BOUNDS) + 1
    # app.mul never ran: no latency series rather than an all-zero histogram
    assert total(samples, "celery_task_runtime_count", name="app.mul") is None


def test_workers_and_a_pruned_worker_disappears(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    fill(sentinel, clock)
    _, samples, _ = scrape(registry)
    assert value(samples, "celery_worker_up", hostname=W1) == 1
    assert value(samples, "celery_worker_up", hostname=W2) == 1
    assert value(samples, "celery_worker_tasks_active", hostname=W2) == 3

    # w1 keeps beating; w2 stops: dead after 2 x freq, still listed (as 0) until pruned
    clock.advance(10)
    beat = ev("worker-heartbeat", hostname=W1, freq=2.0, active=0, processed=1)
    sentinel.store.apply_events([beat], clock.now())
    _, samples, _ = scrape(registry)
    assert value(samples, "celery_worker_up", hostname=W2) == 0
    assert value(samples, "celery_worker_tasks_active", hostname=W2) == 0
    assert value(samples, "celery_worker_up", hostname=W1) == 1

    clock.advance(61)
    sentinel.store.apply_events([beat], clock.now())
    sentinel.store.prune(clock.now())
    text, samples, _ = scrape(registry)
    assert W2 not in text
    assert value(samples, "celery_worker_up", hostname=W1) == 1


def test_queue_length_skips_a_failed_probe(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    fill(sentinel, clock)
    _, samples, _ = scrape(registry)
    assert value(samples, "celery_queue_length", queue_name="celery") == 42
    assert value(samples, "celery_queue_length", queue_name="slow") == 3
    # a queue whose last probe failed has unknown depth: no sample, never a 0
    assert value(samples, "celery_queue_length", queue_name="fresh") is None


def test_self_metrics(sentinel: Sentinel, clock: FakeClock, registry: Any) -> None:
    fill(sentinel, clock)
    sentinel.book.tick(sentinel.config.rules, sentinel.store, clock.now())
    sentinel.book.last_duration = 0.25
    assert sentinel.sender is not None
    sentinel.sender.outcomes[("hook", "retry")] += 2
    _, samples, types = scrape(registry)

    assert types["sentinel_events"] == "counter"
    assert value(samples, "sentinel_events_total", type="task-received") == 2
    assert value(samples, "sentinel_events_total", type="worker-heartbeat") == 2
    assert value(samples, "sentinel_events_total", type="other") == 1
    assert value(samples, "sentinel_events_dropped_total", reason="malformed") == 1
    assert value(samples, "sentinel_events_dropped_total", reason="worker_cap") == 0

    # NoLiveWorkers (2 live < 5, for 0s) fires; QueueBacklog on celery (42 > 10, for 5m) pends
    assert value(samples, "sentinel_alerts", state="firing") == 1
    assert value(samples, "sentinel_alerts", state="pending") == 1
    assert value(samples, "sentinel_rule_evaluation_seconds") == 0.25
    assert value(samples, "sentinel_rule_errors_total") == 0
    assert value(samples, "sentinel_rule_errors_by_rule_total", rule="NoLiveWorkers") == 0

    assert value(samples, "sentinel_notifications_total", channel="hook", outcome="retry") == 2
    # every configured channel's outcomes exist from the start, at 0
    assert value(samples, "sentinel_notifications_total", channel="hook", outcome="failed") == 0
    assert value(samples, "sentinel_outbox_pending") == 0

    ts = "sentinel_last_collection_timestamp_seconds"
    assert value(samples, ts, source="events") == T0
    assert value(samples, ts, source="inspect") == T0 - 5
    assert value(samples, ts, source="queues") == T0 - 1


def test_nothing_collected_yet(sentinel: Sentinel, registry: Any) -> None:
    text, samples, _ = scrape(registry)
    assert "celery_worker_up{" not in text
    assert "sentinel_last_collection_timestamp_seconds{" not in text
    assert value(samples, "sentinel_alerts", state="firing") == 0


def test_a_second_collector_with_the_same_names_is_refused(sentinel: Sentinel) -> None:
    registry = sentinel.metrics_registry()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(FactsCollector(sentinel.store, sentinel.clock))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    fill(sentinel, clock)
    sentinel.book.tick(sentinel.config.rules, sentinel.store, clock.now())
    text, _, _ = scrape(registry)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_poison_is_counted_once_and_impossible_numbers_by_field(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    now = clock.now()
    sentinel.store.apply_events(
        [
            ev("task-sent", uuid="p", name="app.add"),
            ev("task-succeeded", uuid="p", runtime="nan"),  # succeeded, runtime not used
            ev("worker-heartbeat", hostname="ghost@h", freq="inf", active=0),
            ev("task-started", uuid="p2", timestamp="inf"),  # unknown task, not malformed
        ],
        now,
    )
    sentinel.store.count_dropped("refused")
    _, samples, _ = scrape(registry)
    assert value(samples, "sentinel_events_total", type="task-succeeded") == 1
    assert value(samples, "sentinel_events_total", type="task-started") == 0
    assert value(samples, "sentinel_events_dropped_total", reason="malformed") == 0
    assert value(samples, "sentinel_events_dropped_total", reason="unknown_task") == 1
    assert value(samples, "sentinel_events_dropped_total", reason="refused") == 1
    assert value(samples, "sentinel_event_fields_ignored_total", field="runtime") == 1
    assert value(samples, "sentinel_event_fields_ignored_total", field="freq") == 1
    assert value(samples, "sentinel_event_fields_ignored_total", field="timestamp") == 1
    assert total(samples, "celery_task_succeeded_total", name="app.add") == 1


# -- celery-exporter's labels -----------------------------------------------------------------


def test_task_families_carry_hostname_queue_name_and_exception(
    sentinel: Sentinel, clock: FakeClock, registry: Any
) -> None:
    now = clock.now()
    store = sentinel.store
    store.apply_events([ev("worker-heartbeat", hostname="w2@h2", freq=2.0, active=0)], now)
    store.set_inspect(set(), now, 0, {"w2@h2": ["bulk"]}, {}, {}, now)  # w2 consumes one queue
    store.apply_events(
        [
            # a producer process names itself gen<pid>@host: one label value per host
            ev("task-sent", uuid="a", name="app.pay", hostname="gen531@web1", queue="billing"),
            ev("task-received", uuid="a", name="app.pay", hostname="w1@h1"),
            ev("task-started", uuid="a", hostname="w1@h1"),
            ev("task-failed", uuid="a", hostname="w1@h1", exception="KeyError('card 4242')"),
            # no task-sent (Celery's default): the queue is the one its worker consumes
            ev("task-received", uuid="b", name="app.pay", hostname="w2@h2"),
            ev("task-started", uuid="b", hostname="w2@h2"),
            ev("task-failed", uuid="b", hostname="w2@h2", exception="<not a repr>"),
            ev("task-received", uuid="c", name="app.pay", hostname="w2@h2"),
            ev("task-started", uuid="c", hostname="w2@h2"),
            ev("task-succeeded", uuid="c", hostname="w2@h2", runtime=0.2),
        ],
        now,
    )
    text, samples, _ = scrape(registry)
    pay = {"name": "app.pay"}
    web1 = {**pay, "hostname": "web1", "queue_name": "billing"}
    assert value(samples, "celery_task_sent_total", **web1) == 1
    h1 = {**pay, "hostname": "h1", "queue_name": "billing"}
    h2 = {**pay, "hostname": "h2", "queue_name": "bulk"}
    assert value(samples, "celery_task_received_total", **h1) == 1
    assert value(samples, "celery_task_failed_total", **h1, exception="KeyError") == 1
    assert value(samples, "celery_task_failed_total", **h2, exception="UnknownException") == 1
    assert value(samples, "celery_task_succeeded_total", **h2) == 1
    # a worker's label set shows every counter (0 too) so a failure ratio has both sides
    assert value(samples, "celery_task_succeeded_total", **h1) == 0
    assert value(samples, "celery_task_sent_total", **h1) == 0
    # ... a producer's only what it did
    assert value(samples, "celery_task_received_total", **web1) is None
    assert value(samples, "celery_task_runtime_count", **h2) == 2  # failed ones too
    assert "card 4242" not in text and "gen531" not in text


def test_label_sets_past_the_cap_are_counted_and_the_rules_still_see_every_event() -> None:
    store = FactStore(max_metric_label_sets=3, worker_retention=60.0)
    registry = CollectorRegistry()
    registry.register(FactsCollector(store, FakeClock(T0)))
    events = []
    for i in range(4):  # four hosts: the fourth label set is past the cap
        events += [
            ev("task-received", uuid=f"u{i}", name="app.add", hostname=f"w@h{i}"),
            ev("task-started", uuid=f"u{i}", hostname=f"w@h{i}"),
        ]
    events.append(ev("task-failed", uuid="u0", hostname="w@h0", exception="OSError()"))
    store.apply_events(events, T0)
    _, samples, _ = scrape(registry)
    assert total(samples, "celery_task_received_total", name="app.add") == 3
    # h3's received and started, and h0's first exception class (a label set of its own)
    assert value(samples, "sentinel_events_dropped_total", reason="metric_label_cap") == 3
    assert store.tasks["app.add"].totals[COUNTERS.index("received")] == 4  # what rules read
    # an idle label set is forgotten after limits.worker_retention, and its room is free again
    store.apply_events([ev("task-started", uuid="u1", hostname="w@h1")], T0 + 50)
    store.prune(T0 + 61)
    assert list(store.task_metrics) == [("app.add", "h1", "")]
    assert store.label_sets == 1
