from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from sentinel.clock import FakeClock
from sentinel.facts.store import FactStore
from sentinel.model import Sample
from sentinel.rules import RULES, evaluator
from sentinel.rules.base import matches, matching, matching_tasks
from sentinel.rules.failure_rate import FailureRateRule
from sentinel.rules.idle_worker import IdleWorkerRule
from sentinel.rules.no_live_workers import NoLiveWorkersRule
from sentinel.rules.queue_backlog import QueueBacklogRule
from sentinel.rules.task_latency import TaskLatencyRule
from tests.helpers import T0


def heartbeat(hostname: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "worker-heartbeat",
        "hostname": hostname,
        "freq": 2.0,
        "timestamp": T0,
        **fields,
    }


def run(rule: Any, store: FactStore, now: float) -> list[Sample]:
    """Evaluate through the registry, as the alert book does."""
    with store.lock:
        return evaluator(rule.kind)(rule, store, now)


def by_label(samples: list[Sample], key: str) -> dict[str, Sample]:
    return {s.labels[key]: s for s in samples}


def finish(
    store: FactStore,
    name: str,
    outcome: str,
    now: float,
    n: int = 1,
    *,
    wait: float = 0.0,
    runtime: float = 0.0,
) -> None:
    """n tasks of `name` received, started and finished at `now`."""
    events = []
    for _ in range(n):
        finish.counter += 1  # type: ignore[attr-defined]
        uuid = f"{name}-{finish.counter}"  # type: ignore[attr-defined]
        events += [
            {
                "type": "task-received",
                "uuid": uuid,
                "name": name,
                "timestamp": now - wait - runtime,
            },
            {"type": "task-started", "uuid": uuid, "timestamp": now - runtime, "hostname": "w@h"},
            {"type": outcome, "uuid": uuid, "timestamp": now, "runtime": runtime},
        ]
    store.apply_events(events, now)


finish.counter = 0  # type: ignore[attr-defined]


def test_every_kind_is_registered() -> None:
    assert set(RULES) == {
        "no_live_workers",
        "queue_backlog",
        "failure_rate",
        "idle_worker",
        "task_latency",
        "broker_unreachable",
        "stuck_task",
        "lost_task",
        "periodic_task",
        "queue_stalled",
        "queue_unconsumed",
        "worker_flapping",
        "task_rate",
        "events_missing",
        "watchdog",
        "storage_failing",  # built in, not configurable
    }
    for kind in RULES:
        assert callable(evaluator(kind))


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("billing.charge", ("billing.*",), True),
        ("billing", ("billing.*",), False),
        ("reports.daily", ("billing.*", "reports.*"), True),
        ("Billing.charge", ("billing.*",), False),  # case-sensitive, like Celery's names
        ("celery", ("*",), True),
        ("q1", ("q?",), True),
        ("q10", ("q?",), False),
        ("a.b", ("a.[bc]",), True),
    ],
)
def test_glob_matching(name: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert matches(name, patterns) is expected
    assert matching([name], patterns) == ([name] if expected else [])


@pytest.mark.parametrize(
    "patterns",
    [
        ("*",),
        ("app1.*", "*"),
        ("app1.*",),
        ("app1.*", "app2.*"),
        ("app1*",),
        ("*.charge",),
        ("app?.*",),
        ("app1.*", "app[23].*"),
        ("app1.t*x",),
        ("app1.tasks.t1",),
        ("",),
        ("a\\*",),
    ],
)
def test_glob_fast_paths_agree_with_fnmatch(patterns: tuple[str, ...]) -> None:
    names = [
        "app1.tasks.t1",
        "app1.tasks.t1x",
        "app10.x",
        "app2.charge",
        "app3.y",
        "App1.x",
        "app1",
        "app1.",
        "a\\b",
        "a\\*",
        "line\nbreak",
        "",
    ]
    expected = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    assert matching(names, patterns) == expected
    assert [n for n in names if matches(n, patterns)] == expected
    store = FactStore()
    for n in names[:6]:
        store.series(n)
    first = [n for n, _ in matching_tasks(store, patterns)]
    for n in names[6:]:
        store.series(n)
    assert first == [n for n in expected if n in names[:6]]
    found = matching_tasks(store, patterns)  # extended with the names that arrived since
    assert [n for n, _ in found] == [n for n in expected if n]  # "" is never a series
    assert all(series is store.tasks[n] for n, series in found)


# -- no_live_workers --------------------------------------------------------------------------


def nlw(**kw: Any) -> NoLiveWorkersRule:
    return NoLiveWorkersRule(name="NoLiveWorkers", kind="no_live_workers", **kw)


def test_no_live_workers_unknown_before_any_evidence() -> None:
    store = FactStore()
    [sample] = run(nlw(), store, T0)
    assert sample.active is None
    assert sample.value == 0.0
    assert sample.labels == {}


@pytest.mark.parametrize("source", ["inspect", "events"])
def test_no_live_workers_active_once_a_probe_ran(source: str) -> None:
    store = FactStore()
    store.probe_ok(source, T0)
    if source == "events":
        # a subscription alone says nothing: an event must have arrived too
        assert run(nlw(), store, T0)[0].active is None
        store.apply_events([{"type": "task-custom"}], T0)
    [sample] = run(nlw(), store, T0 + 1)
    assert (sample.active, sample.value, sample.threshold) == (True, 0.0, 1.0)


def test_no_live_workers_failed_probe_is_not_evidence() -> None:
    store = FactStore()
    store.probe_failed("inspect", "timeout", T0)
    assert run(nlw(), store, T0)[0].active is None


@pytest.mark.parametrize(
    ("rule", "at", "active", "live"),
    [
        (nlw(), 1.0, False, 2.0),
        (nlw(), 3.9, False, 2.0),  # w1 beat at T0, w2 at T0+2: both alive
        (nlw(), 4.5, False, 1.0),  # w1 expired at T0+4; w2 alive until T0+6
        (nlw(), 6.0, True, 0.0),  # both expired: 0 live -> active
        (nlw(min_workers=2), 4.5, True, 1.0),
        (nlw(workers=("w1@*",)), 4.5, True, 0.0),  # only w1 counts, and it is dead
        (nlw(workers=("w2@*",)), 4.5, False, 1.0),
    ],
)
def test_no_live_workers(rule: NoLiveWorkersRule, at: float, active: bool, live: float) -> None:
    store = FactStore()
    store.apply_event(heartbeat("w1@h"), T0)
    store.apply_event(heartbeat("w2@h"), T0 + 2)
    [sample] = run(rule, store, T0 + at)
    assert sample.active is active
    assert sample.value == live
    assert sample.threshold == float(rule.min_workers)


def test_no_live_workers_after_offline() -> None:
    store = FactStore()
    store.apply_event(heartbeat("w1@h"), T0)
    assert run(nlw(), store, T0 + 1)[0].active is False
    store.apply_event({"type": "worker-offline", "hostname": "w1@h", "timestamp": T0}, T0 + 1)
    assert run(nlw(), store, T0 + 1)[0].active is True


# -- queue_backlog ----------------------------------------------------------------------------


def backlog(queues: tuple[str, ...] = ("*",), threshold: int = 100) -> QueueBacklogRule:
    return QueueBacklogRule(
        name="QueueBacklog", kind="queue_backlog", queues=queues, threshold=threshold
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (backlog(), {"celery": False, "billing": True, "mail": False, "reports": None}),
        (backlog(("b*",)), {"billing": True}),
        (backlog(("celery", "mail")), {"celery": False, "mail": False}),
        (
            backlog(threshold=101),
            {"celery": False, "billing": False, "mail": False, "reports": None},
        ),
        (backlog(threshold=99), {"celery": True, "billing": True, "mail": False, "reports": None}),
        (backlog(("nothing-*",)), {}),
    ],
)
def test_queue_backlog(rule: QueueBacklogRule, expected: dict[str, bool | None]) -> None:
    store = FactStore()
    store.set_queue_depths(
        {"celery": (100, 2), "billing": (101, 0), "mail": (0, 1), "reports": (5, 1)},
        {"reports": "connection refused"},
        T0,
    )
    samples = by_label(run(rule, store, T0), "queue")
    assert {q: s.active for q, s in samples.items()} == expected
    for name, s in samples.items():
        assert s.threshold == float(rule.threshold)
        depth = store.queues[name].depth
        assert s.value == (None if depth is None else float(depth))


# -- failure_rate -----------------------------------------------------------------------------


def failure_rate(**kw: Any) -> FailureRateRule:
    kw = {"tasks": ("*",), "window": 300.0, "threshold": 0.05, "min_count": 20} | kw
    return FailureRateRule(name="TaskFailureRate", kind="failure_rate", **kw)


def test_failure_rate_fires_only_for_the_failing_task() -> None:
    store = FactStore()
    finish(store, "billing.charge", "task-succeeded", T0, 15)
    finish(store, "billing.charge", "task-failed", T0, 15)
    finish(store, "billing.refund", "task-succeeded", T0, 30)
    finish(store, "mail.send", "task-failed", T0, 30)
    samples = by_label(run(failure_rate(tasks=("billing.*",)), store, T0 + 1), "task")
    assert set(samples) == {"billing.charge", "billing.refund"}
    charge, refund = samples["billing.charge"], samples["billing.refund"]
    assert (charge.active, charge.value, charge.threshold) == (True, 0.5, 0.05)
    assert (refund.active, refund.value) == (False, 0.0)


@pytest.mark.parametrize(
    ("ok", "bad", "active", "value"),
    [
        (0, 0, None, None),  # nothing finished in the window: cannot tell (a firing alert holds)
        (19, 0, False, 0.0),  # below min_count but nothing failed: certainly fine
        (18, 1, None, 1 / 19),  # below min_count with failures: no verdict
        (0, 19, None, 1.0),
        (19, 1, False, 0.05),  # exactly the threshold is not above it
        (18, 2, True, 0.1),
        (949, 51, True, 0.051),
        (950, 50, False, 0.05),
    ],
)
def test_failure_rate_math(ok: int, bad: int, active: bool | None, value: float | None) -> None:
    store = FactStore()
    # a series exists (the task was seen) even with no finished run
    store.apply_event({"type": "task-received", "uuid": "x", "name": "t", "timestamp": T0}, T0)
    finish(store, "t", "task-succeeded", T0, ok)
    finish(store, "t", "task-failed", T0, bad)
    [sample] = run(failure_rate(), store, T0 + 1)
    assert sample.active is active
    if value is None:
        assert sample.value is None
    else:
        assert sample.value == pytest.approx(value)


def test_failure_rate_counts_only_the_window() -> None:
    clock = FakeClock(T0)
    store = FactStore(bucket=10.0, retention=600.0)
    rule = failure_rate(window=60.0, min_count=10)
    finish(store, "t", "task-failed", clock.now(), 20)  # a burst of failures at T0
    clock.advance(30)
    finish(store, "t", "task-succeeded", clock.now(), 20)
    [sample] = run(rule, store, clock.now())
    assert (sample.active, sample.value) == (True, 0.5)
    clock.advance(40)  # T0+70: the T0 bucket [T0, T0+10) no longer overlaps (T0+10, T0+70]
    [sample] = run(rule, store, clock.now())
    assert (sample.active, sample.value) == (False, 0.0)
    clock.set(T0 + 69.9)  # still overlaps: the window edge is exact to one bucket width
    [sample] = run(rule, store, clock.now())
    assert sample.active is True
    clock.set(T0 + 100)  # everything has left the window: no traffic, no verdict
    [sample] = run(rule, store, clock.now())
    assert (sample.active, sample.value) == (None, None)


def test_failure_rate_counts_retries_as_neither() -> None:
    store = FactStore()
    events = [
        {"type": "task-received", "uuid": "r", "name": "t", "timestamp": T0},
        {"type": "task-retried", "uuid": "r", "timestamp": T0, "exception": "x"},
    ]
    store.apply_events(events, T0)
    finish(store, "t", "task-succeeded", T0, 20)
    [sample] = run(failure_rate(), store, T0)
    assert (sample.active, sample.value) == (False, 0.0)


# -- idle_worker ------------------------------------------------------------------------------


def idle(**kw: Any) -> IdleWorkerRule:
    return IdleWorkerRule(name="IdleWorker", kind="idle_worker", idle_for=900.0, **kw)


def test_idle_worker() -> None:
    clock = FakeClock(T0)
    store = FactStore()
    rule = idle()

    def beat(hostname: str, **fields: Any) -> None:
        store.apply_event(heartbeat(hostname, **fields), clock.now())

    beat("idle@h", active=0, processed=0)
    beat("busy@h", active=0, processed=0)
    beat("dead@h", active=0, processed=0)
    for _ in range(0, 1000, 2):
        clock.advance(2)
        beat("idle@h", active=0, processed=0)
        beat("busy@h", active=1, processed=0)  # one long task running: not idle
    samples = by_label(run(rule, store, clock.now()), "worker")
    assert set(samples) == {"idle@h", "busy@h"}  # a dead worker is not idle, just dead
    assert samples["idle@h"].active is True
    assert samples["idle@h"].value == pytest.approx(1000.0)
    assert samples["idle@h"].threshold == 900.0
    assert (samples["busy@h"].active, samples["busy@h"].value) == (False, 0.0)


@pytest.mark.parametrize(
    ("last_event", "idle_seconds", "active"),
    [
        ("nothing", 899.0, False),
        ("nothing", 900.0, True),  # idle >= idle_for
        ("started", 899.0, False),
        ("processed", 899.0, False),
        ("processed", 900.0, True),
    ],
)
def test_idle_worker_edges(last_event: str, idle_seconds: float, active: bool) -> None:
    clock = FakeClock(T0)
    store = FactStore()
    store.apply_event(heartbeat("w@h", active=0, processed=3), clock.now())
    clock.advance(500)
    if last_event == "started":
        store.apply_events(
            [
                {"type": "task-received", "uuid": "u", "name": "t", "timestamp": clock.now()},
                {"type": "task-started", "uuid": "u", "timestamp": clock.now(), "hostname": "w@h"},
            ],
            clock.now(),
        )
    elif last_event == "processed":
        store.apply_event(heartbeat("w@h", active=0, processed=4), clock.now())
    idle_since = T0 if last_event == "nothing" else clock.now()
    clock.set(idle_since + idle_seconds)
    processed = 4 if last_event == "processed" else 3
    store.apply_event(heartbeat("w@h", active=0, processed=processed), clock.now())  # alive
    [sample] = run(idle(), store, clock.now())
    assert sample.active is active
    assert sample.value == pytest.approx(idle_seconds)


def test_idle_worker_glob_filter() -> None:
    store = FactStore()
    store.apply_event(heartbeat("a@h"), T0)
    store.apply_event(heartbeat("b@h"), T0)
    samples = run(idle(workers=("a@*",)), store, T0 + 1)
    assert [s.labels["worker"] for s in samples] == ["a@h"]


# -- task_latency -----------------------------------------------------------------------------


def latency(**kw: Any) -> TaskLatencyRule:
    kw = {"tasks": ("*",), "threshold": 30.0, "window": 600.0, "min_count": 10} | kw
    return TaskLatencyRule(name="SlowTasks", kind="task_latency", **kw)


@pytest.fixture
def latency_store() -> FactStore:
    """reports.daily: 100 runs waiting 1..100 s in the queue and running 0.1..10 s."""
    store = FactStore()
    for i in range(1, 101):
        finish(store, "reports.daily", "task-succeeded", T0, wait=float(i), runtime=i / 10)
    for _ in range(5):
        finish(store, "reports.rare", "task-succeeded", T0, wait=100.0, runtime=100.0)
    finish(store, "mail.send", "task-succeeded", T0, 20, wait=100.0, runtime=100.0)
    return store


@pytest.mark.parametrize(
    ("rule", "value", "active"),
    [
        # p95 of 1..100 is the 95th value (rank floor(0.95 * 99) = 94 -> 95)
        (latency(measure="queue_wait", threshold=30.0), 95.0, True),
        (latency(measure="queue_wait", threshold=96.0), 95.0, False),
        (latency(measure="runtime", threshold=30.0), 9.5, False),
        (latency(measure="runtime", threshold=9.0), 9.5, True),
        (latency(measure="total", threshold=100.0), 95 * 1.1, True),
        (latency(measure="total", percentile=50, threshold=100.0), 50 * 1.1, False),
        (latency(measure="queue_wait", percentile=99, threshold=98.0), 99.0, True),
        (latency(measure="runtime", min_count=101, threshold=1.0), 9.5, None),
    ],
)
def test_task_latency(
    latency_store: FactStore, rule: TaskLatencyRule, value: float, active: bool | None
) -> None:
    samples = by_label(
        run(rule.model_copy(update={"tasks": ("reports.*",)}), latency_store, T0), "task"
    )
    sample = samples["reports.daily"]
    assert sample.value == pytest.approx(value, rel=0.01)
    assert sample.active is active
    assert sample.threshold == rule.threshold
    assert "mail.send" not in samples


def test_task_latency_below_min_count_has_no_verdict(latency_store: FactStore) -> None:
    samples = by_label(run(latency(tasks=("reports.*",)), latency_store, T0), "task")
    rare = samples["reports.rare"]
    assert rare.value == pytest.approx(200.0, rel=0.01)
    assert rare.active is None


def test_task_latency_no_data_is_not_slow() -> None:
    store = FactStore()
    store.apply_event({"type": "task-received", "uuid": "u", "name": "t", "timestamp": T0}, T0)
    [sample] = run(latency(), store, T0)
    assert (sample.active, sample.value) == (False, None)


def test_task_latency_window() -> None:
    clock = FakeClock(T0)
    store = FactStore(bucket=10.0, retention=3600.0)
    finish(store, "t", "task-succeeded", clock.now(), 20, runtime=60.0)
    clock.advance(300)
    finish(store, "t", "task-succeeded", clock.now(), 20, runtime=1.0)
    rule = latency(measure="runtime", window=120.0)
    [sample] = run(rule, store, clock.now())
    assert sample.value == pytest.approx(1.0, rel=0.01)
    assert sample.active is False
    [sample] = run(latency(measure="runtime", window=600.0), store, clock.now())
    assert sample.value == pytest.approx(60.0, rel=0.01)
    assert sample.active is True


# --- broker_unreachable ------------------------------------------------------------------


def broker_rule() -> Any:
    from sentinel.rules.broker_unreachable import BrokerUnreachableRule

    return BrokerUnreachableRule(name="BrokerDown", kind="broker_unreachable")


def test_broker_unreachable_unknown_before_any_probe() -> None:
    [s] = run(broker_rule(), FactStore(), T0)
    assert s.active is None


def test_broker_unreachable_inactive_while_probes_succeed() -> None:
    store = FactStore()
    store.probe_ok("events", T0)
    store.probe_ok("inspect", T0)
    [s] = run(broker_rule(), store, T0 + 1)
    assert s.active is False and s.value == 0


def test_broker_unreachable_fires_with_time_since_the_last_success() -> None:
    store = FactStore()
    store.probe_ok("events", T0)
    store.probe_ok("inspect", T0)
    store.probe_failed("inspect", "ConnectionError: refused", T0 + 10)
    [s] = run(broker_rule(), store, T0 + 30)
    assert s.active is True and s.value == 30
    store.probe_ok("inspect", T0 + 40)
    [s] = run(broker_rule(), store, T0 + 41)
    assert s.active is False


def test_broker_unreachable_from_start_counts_from_the_first_failure() -> None:
    store = FactStore()
    store.probe_failed("events", "OperationalError", T0)
    [s] = run(broker_rule(), store, T0 + 12)
    assert s.active is True and s.value == 12


def test_no_live_workers_holds_while_the_broker_is_unreachable() -> None:
    # Heartbeats stop because the broker is down, not because workers died: no verdict.
    store = FactStore()
    store.probe_ok("events", T0)
    store.probe_ok("inspect", T0)
    store.apply_event(heartbeat("w1@h"), T0)
    store.probe_failed("events", "ConnectionError", T0 + 1)
    store.probe_failed("inspect", "ConnectionError", T0 + 1)
    [sample] = run(nlw(), store, T0 + 10)
    assert sample.value == 0.0 and sample.active is None
    # Inspect answering again (nobody pinged back) is evidence once more.
    store.probe_ok("inspect", T0 + 11)
    assert run(nlw(), store, T0 + 12)[0].active is True


def test_no_live_workers_a_ping_round_older_than_the_outage_is_no_evidence() -> None:
    store = FactStore()
    store.probe_ok("inspect", T0)  # last round before the stream dropped
    store.probe_ok("events", T0)
    store.apply_event(heartbeat("w1@h"), T0)
    store.probe_failed("events", "ConnectionError", T0 + 1)
    assert run(nlw(), store, T0 + 10)[0].active is None


def test_broker_unreachable_value_only_grows_during_one_outage() -> None:
    """The trial's outage: probes fail and flap at different times (the stream's quiet-second
    checks pass for a while, a queue probe answers once); the value must not swing back."""
    store = FactStore()
    for source in ("events", "inspect", "queues"):
        store.probe_ok(source, T0)
    store.probe_failed("inspect", "ConnectionError", T0 + 2)
    store.probe_ok("events", T0 + 5)  # a quiet second on a socket not yet known dead
    store.probe_failed("queues", "ConnectionError", T0 + 8)
    store.probe_ok("queues", T0 + 20)  # one probe gets through, the others still fail
    store.probe_failed("events", "ConnectionError", T0 + 21)
    store.probe_failed("queues", "ConnectionError", T0 + 30)
    values = []
    for t in (T0 + 17, T0 + 32, T0 + 47, T0 + 62):
        [s] = run(broker_rule(), store, t)
        assert s.active is True
        values.append(s.value)
    assert values == [17.0, 32.0, 47.0, 62.0]  # since T0, when sentinel last reached it all
    for source in ("events", "inspect", "queues"):
        store.probe_ok(source, T0 + 70)
    [s] = run(broker_rule(), store, T0 + 75)
    # Back: the value is how long the outage lasted, which is what its resolve shows.
    assert s.active is False and s.value == 70.0


def test_broker_unreachable_never_reached_counts_from_start() -> None:
    store = FactStore()
    store.started_at = T0 - 5
    store.probe_failed("events", "ConnectionError", T0)
    store.probe_failed("inspect", "ConnectionError", T0 + 3)
    [s] = run(broker_rule(), store, T0 + 10)
    assert s.active is True and s.value == 15.0
